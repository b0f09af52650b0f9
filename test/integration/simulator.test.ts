import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import {
  CloudAdapter,
  ConfigurationBotFrameworkAuthentication,
  type ConversationParameters,
  type ConversationReference,
  TeamsInfo,
  type TurnContext,
} from "botbuilder";

import { PER_BOT_PER_CONVERSATION_LIMITS } from "../../shared/teams-limits";
import type { SimTeam, SimUser } from "../simulator";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";

/** What a caller of the Bot Connector sees: status, headers, parsed body. */
async function call(
  sim: TeamsSimulator,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown; retryAfter: string | null }> {
  const response = await fetch(new URL(path, sim.serviceUrl), {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text === "" ? undefined : (JSON.parse(text) as unknown),
    retryAfter: response.headers.get("retry-after"),
  };
}

const enc = encodeURIComponent;

function createBody(sim: TeamsSimulator, memberId: string): Record<string, unknown> {
  return {
    bot: { id: sim.botId },
    members: [{ id: memberId }],
    channelData: { tenant: { id: sim.tenantId } },
    isGroup: false,
    tenantId: sim.tenantId,
  };
}

function sendPath(conversationId: string): string {
  return `v3/conversations/${enc(conversationId)}/activities`;
}

function errorCode(body: unknown): unknown {
  return (body as { error?: { code?: unknown } } | undefined)?.error?.code;
}

describe("TeamsSimulator", () => {
  let sim: TeamsSimulator;

  beforeEach(async () => {
    sim = await startTeamsSimulator();
  });

  afterEach(async () => {
    await sim.close();
  });

  describe("with the botbuilder SDK (anonymous CloudAdapter)", () => {
    const adapter = new CloudAdapter(new ConfigurationBotFrameworkAuthentication({}));

    function parameters(user: SimUser): ConversationParameters {
      return {
        isGroup: false,
        bot: { id: sim.botId, name: "Herald" },
        members: [{ id: user.id, name: user.name }],
        channelData: { tenant: { id: sim.tenantId } },
        tenantId: sim.tenantId,
      };
    }

    function channelReference(team: SimTeam): Partial<ConversationReference> {
      return {
        channelId: "msteams",
        serviceUrl: sim.serviceUrl,
        bot: { id: sim.botId, name: "Herald" },
        conversation: {
          id: team.id,
          conversationType: "channel",
          isGroup: true,
          tenantId: sim.tenantId,
          name: team.name,
        },
      };
    }

    async function inChannel(team: SimTeam, logic: (ctx: TurnContext) => Promise<void>) {
      await adapter.continueConversationAsync("", channelReference(team), logic);
    }

    it("creates a 1:1 conversation and records the message sent in it", async () => {
      const alice = sim.addUser({ name: "Alice Adams" });
      let conversationId: string | undefined;
      let activityId: string | undefined;

      await adapter.createConversationAsync(
        "",
        "msteams",
        sim.serviceUrl,
        "",
        parameters(alice),
        async (ctx) => {
          conversationId = ctx.activity.conversation.id;
          activityId = (await ctx.sendActivity("Your expense report was approved"))?.id;
        },
      );

      expect(conversationId).toBe(sim.personalConversationId(alice));
      expect(conversationId).toMatch(/^a:/);
      const create = sim.requests.find((r) => r.route === "createConversation");
      expect(create?.body).toMatchObject({
        members: [{ id: alice.id }],
        channelData: { tenant: { id: sim.tenantId } },
        isGroup: false,
      });
      expect(create?.status).toBe(201);
      const messages = sim.messagesToUser(alice);
      expect(messages.map((m) => m.text)).toEqual(["Your expense report was approved"]);
      expect(messages[0]?.id).toBe(activityId);
      // In the create callback botbuilder posts a reply to the new conversation.
      expect(messages[0]?.replyToId).toBe(conversationId);
    });

    it("answers the same conversation id for the same user, by 29: id or AAD object id", async () => {
      const bob = sim.addUser();
      const ids: string[] = [];
      for (const member of [bob.id, bob.id, bob.aadObjectId]) {
        await adapter.createConversationAsync(
          "",
          "msteams",
          sim.serviceUrl,
          "",
          { ...parameters(bob), members: [{ id: member, name: "" }] },
          (ctx) => {
            ids.push(ctx.activity.conversation.id);
            return Promise.resolve();
          },
        );
      }
      expect(new Set(ids).size).toBe(1);
      expect(ids[0]).toBe(sim.personalConversationId(bob));
      expect(sim.personalConversationId(sim.addUser())).not.toBe(ids[0]);
    });

    it("pages a roster of 1,200 members in three pages of 500 with TeamsInfo.getPagedMembers", async () => {
      const team = sim.addTeam({ name: "Finance", memberCount: 1200 });
      const seen: string[] = [];
      let pages = 0;
      await inChannel(team, async (ctx) => {
        let token: string | undefined;
        do {
          const page = await TeamsInfo.getPagedMembers(ctx, 500, token);
          pages += 1;
          seen.push(...page.members.map((m) => m.id));
          token = page.continuationToken;
        } while (token !== undefined && token !== null && token !== "");
      });

      expect(pages).toBe(3);
      expect(new Set(seen).size).toBe(1200);
      expect(seen).toEqual(team.members.map((m) => m.id));
      const paged = sim.requests.filter((r) => r.route === "pagedMembers");
      expect(paged.map((r) => r.query.pageSize)).toEqual(["500", "500", "500"]);
      expect(paged[0]?.conversationId).toBe(team.id);
    });

    it("returns members in the TeamsChannelAccount shape", async () => {
      const carol = sim.addUser({ name: "Carol Chen", userPrincipalName: "carol@contoso.example" });
      const team = sim.addTeam({ members: [carol] });
      let member: unknown;
      await inChannel(team, async (ctx) => {
        member = (await TeamsInfo.getPagedMembers(ctx, 50)).members[0];
      });
      expect(member).toEqual({
        id: carol.id,
        name: "Carol Chen",
        aadObjectId: carol.aadObjectId,
        givenName: "Carol",
        surname: "Chen",
        email: "carol@contoso.example",
        userPrincipalName: "carol@contoso.example",
        tenantId: sim.tenantId,
        userRole: "user",
      });
    });

    it("finds one member by 29: id or AAD object id and refuses a non-member with MemberNotFoundInConversation", async () => {
      const team = sim.addTeam({ memberCount: 3 });
      const outsider = sim.addUser();
      const [first] = team.members;
      const found: string[] = [];
      let failure: { statusCode?: number; code?: string } | undefined;
      await inChannel(team, async (ctx) => {
        found.push((await TeamsInfo.getMember(ctx, first!.id)).aadObjectId!);
        found.push((await TeamsInfo.getMember(ctx, first!.aadObjectId)).id);
        try {
          await TeamsInfo.getMember(ctx, outsider.id);
        } catch (error) {
          failure = error as typeof failure;
        }
      });
      expect(found).toEqual([first!.aadObjectId, first!.id]);
      expect(failure).toMatchObject({ statusCode: 404, code: "MemberNotFoundInConversation" });
    });

    it("lists the team's channels with General under the team id, and the team details", async () => {
      const team = sim.addTeam({ name: "Ops", memberCount: 2, channels: ["Alerts"] });
      let channels: { id?: string; name?: string }[] = [];
      let details: { id?: string; name?: string; memberCount?: number; aadGroupId?: string } = {};
      await inChannel(team, async (ctx) => {
        channels = await TeamsInfo.getTeamChannels(ctx, team.id);
        details = await TeamsInfo.getTeamDetails(ctx, team.id);
      });
      expect(channels[0]?.id).toBe(team.id);
      expect(channels[1]?.name).toBe("Alerts");
      expect(details).toMatchObject({ id: team.id, name: "Ops", memberCount: 2 });
      expect(details.aadGroupId).toBe(team.aadGroupId);
    });

    it("records updates and deletions of a posted activity", async () => {
      const team = sim.addTeam({ memberCount: 1 });
      await inChannel(team, async (ctx) => {
        const sent = await ctx.sendActivity("Deploying…");
        await ctx.updateActivity({ id: sent!.id, type: "message", text: "Deployed" });
        const second = await ctx.sendActivity("temporary");
        await ctx.deleteActivity(second!.id);
      });
      const [first, second] = sim.activitiesIn(team.id);
      expect(first?.text).toBe("Deployed");
      expect(first?.previousVersions.map((v) => v.text)).toEqual(["Deploying…"]);
      expect(first?.deleted).toBe(false);
      expect(second?.deleted).toBe(true);
      expect(sim.countRoute("updateActivity", 200)).toBe(1);
      expect(sim.countRoute("deleteActivity", 200)).toBe(1);
    });

    it("reaches the caller with a 429 only after the connector client's own three retries", async () => {
      // botbuilder's client (via @azure/core-rest-pipeline) retries a 429 that carries
      // Retry-After up to 3 times, so four refusals in a row are needed to surface one.
      const dave = sim.addUser();
      sim.failNext("sendActivity", { status: 429, retryAfterSeconds: 0, times: 4 });
      let failure: { statusCode?: number; code?: string } | undefined;
      try {
        await adapter.createConversationAsync(
          "",
          "msteams",
          sim.serviceUrl,
          "",
          parameters(dave),
          async (ctx) => {
            await ctx.sendActivity("hello");
          },
        );
      } catch (error) {
        failure = error as typeof failure;
      }
      expect(failure).toMatchObject({ statusCode: 429, code: "Throttled" });
      expect(sim.countRoute("sendActivity", 429)).toBe(4);
      expect(sim.messagesToUser(dave)).toHaveLength(0);
    });

    it("lets the connector client's retry deliver after a single 429", async () => {
      const erin = sim.addUser();
      sim.failNext("sendActivity", { status: 429, retryAfterSeconds: 0 });
      await adapter.createConversationAsync(
        "",
        "msteams",
        sim.serviceUrl,
        "",
        parameters(erin),
        async (ctx) => {
          await ctx.sendActivity("hello");
        },
      );
      expect(sim.requests.filter((r) => r.route === "sendActivity").map((r) => r.status)).toEqual([
        429, 201,
      ]);
      expect(sim.messagesToUser(erin)).toHaveLength(1);
    });

    it("serves under a regional base path like Teams' amer/", async () => {
      const regional = await startTeamsSimulator({ basePath: "amer" });
      try {
        const user = regional.addUser();
        await adapter.createConversationAsync(
          "",
          "msteams",
          regional.serviceUrl,
          "",
          {
            ...parameters(user),
            tenantId: regional.tenantId,
            channelData: { tenant: { id: regional.tenantId } },
          },
          async (ctx) => {
            await ctx.sendActivity("hello");
          },
        );
        expect(regional.serviceUrl).toMatch(/\/amer\/$/);
        expect(regional.requests.map((r) => [r.route, r.status])).toEqual([
          ["createConversation", 201],
          ["sendActivity", 201],
        ]);
        expect(regional.requests[0]?.path).toBe("/amer/v3/conversations");
      } finally {
        await regional.close();
      }
    });

    it("surfaces a 403 with the Teams error code to the caller, without retries", async () => {
      const frank = sim.addUser();
      sim.failNext("sendActivity", { status: 403, code: "ConversationBlockedByUser", user: frank });
      let failure: { statusCode?: number; code?: string } | undefined;
      try {
        await adapter.createConversationAsync(
          "",
          "msteams",
          sim.serviceUrl,
          "",
          parameters(frank),
          async (ctx) => {
            await ctx.sendActivity("hello");
          },
        );
      } catch (error) {
        failure = error as typeof failure;
      }
      expect(failure).toMatchObject({ statusCode: 403, code: "ConversationBlockedByUser" });
      expect(sim.countRoute("sendActivity")).toBe(1);
    });
  });

  describe("over plain HTTP", () => {
    it("refuses to create a conversation with an unknown member", async () => {
      const unknown29 = await call(sim, "POST", "v3/conversations", createBody(sim, "29:1nobody"));
      const unknownAad = await call(
        sim,
        "POST",
        "v3/conversations",
        createBody(sim, "00000000-0000-0000-0000-000000000000"),
      );
      expect(unknown29.status).toBe(400);
      expect(errorCode(unknown29.body)).toBe("BadArgument");
      expect(unknownAad.status).toBe(404);
      expect(errorCode(unknownAad.body)).toBe("NotFound");
    });

    it("refuses a create without a tenant, for another tenant, or for a group", async () => {
      const user = sim.addUser();
      const noTenant = { bot: { id: sim.botId }, members: [{ id: user.id }] };
      const otherTenant = {
        ...createBody(sim, user.id),
        tenantId: "other",
        channelData: { tenant: { id: "other" } },
      };
      const group = { ...createBody(sim, user.id), isGroup: true };
      for (const body of [noTenant, otherTenant, group, "not json", [1]]) {
        const answer = await call(sim, "POST", "v3/conversations", body);
        expect(answer.status).toBe(400);
        expect(errorCode(answer.body)).toBe("BadArgument");
      }
    });

    it("answers each injected status with a Teams error body, Retry-After on 429", async () => {
      const user = sim.addUser();
      const path = sendPath(sim.personalConversationId(user));
      const cases = [
        { status: 403, code: "BotDisabledByAdmin" },
        { status: 404, code: "ConversationNotFound" },
        { status: 412, code: "PreconditionFailed" },
        { status: 413, code: "MessageSizeTooBig" },
        { status: 429, code: "Throttled" },
        { status: 500, code: "ServiceError" },
        { status: 502, code: "ServiceError" },
        { status: 503, code: "ServiceUnavailable" },
        { status: 504, code: "GatewayTimeout" },
      ] as const;
      for (const { status, code } of cases) {
        sim.failNext("sendActivity", status === 403 ? { status, code } : { status });
        const answer = await call(sim, "POST", path, { type: "message", text: "hi" });
        expect({ status: answer.status, code: errorCode(answer.body) }).toEqual({ status, code });
        expect(answer.retryAfter).toBe(status === 429 ? "1" : null);
      }
      sim.failNext("sendActivity", { status: 429, retryAfterSeconds: 7 });
      expect((await call(sim, "POST", path, { type: "message", text: "hi" })).retryAfter).toBe("7");
      sim.failNext("sendActivity", {
        status: 403,
        code: "Forbidden",
        subCode: "MessageWritesBlocked",
      });
      expect((await call(sim, "POST", path, { type: "message", text: "hi" })).body).toEqual({
        // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment -- jest matcher
        error: { code: "Forbidden", message: expect.any(String), subCode: "MessageWritesBlocked" },
      });
      expect((await call(sim, "POST", path, { type: "message", text: "hi" })).status).toBe(201);
      expect(sim.stats().injectedFaults).toBe(cases.length + 2);
    });

    it("applies a fault the given number of times, only to the user it names", async () => {
      const [target, other] = sim.addUsers(2);
      sim.failNext("sendActivity", { status: 403, user: target!, times: 2 });
      const statuses: number[] = [];
      for (const user of [other!, target!, other!, target!, target!]) {
        const path = sendPath(sim.personalConversationId(user));
        statuses.push((await call(sim, "POST", path, { type: "message", text: "x" })).status);
      }
      expect(statuses).toEqual([201, 403, 201, 403, 201]);
      expect(sim.messagesToUser(other!)).toHaveLength(2);
    });

    it("drops the connection on a connection-reset fault", async () => {
      const user = sim.addUser();
      sim.failNext("*", { status: "connection-reset" });
      await expect(
        call(sim, "POST", sendPath(sim.personalConversationId(user)), {
          type: "message",
          text: "x",
        }),
      ).rejects.toThrow();
      expect(sim.requests[0]?.status).toBe(-1);
    });

    it("answers 404 ConversationNotFound after the user deleted the chat, and a new id on the next create", async () => {
      const user = sim.addUser();
      const oldId = sim.personalConversationId(user);
      sim.deletePersonalConversation(user);
      const send = await call(sim, "POST", sendPath(oldId), { type: "message", text: "x" });
      const created = await call(sim, "POST", "v3/conversations", createBody(sim, user.id));
      const newId = (created.body as { id: string }).id;
      expect(send.status).toBe(404);
      expect(errorCode(send.body)).toBe("ConversationNotFound");
      expect(newId).not.toBe(oldId);
      expect(
        (await call(sim, "POST", sendPath(newId), { type: "message", text: "y" })).status,
      ).toBe(201);
    });

    it("refuses sends to a blocked user until unblocked", async () => {
      const user = sim.addUser();
      const path = sendPath(sim.personalConversationId(user));
      sim.blockUser(user, { code: "ConversationBlockedByUser" });
      const blocked = await call(sim, "POST", path, { type: "message", text: "x" });
      sim.unblockUser(user);
      const unblocked = await call(sim, "POST", path, { type: "message", text: "x" });
      expect([blocked.status, errorCode(blocked.body), unblocked.status]).toEqual([
        403,
        "ConversationBlockedByUser",
        201,
      ]);
    });

    it("refuses malformed, empty and oversized activities and unknown conversations", async () => {
      const user = sim.addUser();
      const path = sendPath(sim.personalConversationId(user));
      const answers = [
        await call(sim, "POST", path, "{not json"),
        await call(sim, "POST", path, { text: "no type" }),
        await call(sim, "POST", path, { type: "message", text: "  " }),
        await call(sim, "POST", path, { type: "message", text: "x".repeat(110_000) }),
        await call(sim, "POST", path, "{".repeat(2_000_000)),
        await call(sim, "POST", sendPath("a:1unknown"), { type: "message", text: "x" }),
        await call(sim, "GET", "v3/nothing-here"),
      ];
      expect(answers.map((a) => [a.status, errorCode(a.body)])).toEqual([
        [400, "BadArgument"],
        [400, "BadArgument"],
        [400, "BadArgument"],
        [413, "MessageSizeTooBig"],
        [413, "MessageSizeTooBig"],
        [404, "ConversationNotFound"],
        [404, "NotFound"],
      ]);
      expect(sim.messagesToUser(user)).toHaveLength(0);
    });

    it("refuses a continuation token from another conversation", async () => {
      const a = sim.addTeam({ memberCount: 60 });
      const b = sim.addTeam({ memberCount: 60 });
      const first = await call(
        sim,
        "GET",
        `v3/conversations/${enc(a.id)}/pagedmembers?pageSize=50`,
      );
      const token = (first.body as { continuationToken: string }).continuationToken;
      const wrong = await call(
        sim,
        "GET",
        `v3/conversations/${enc(b.id)}/pagedmembers?continuationToken=${enc(token)}`,
      );
      const garbage = await call(
        sim,
        "GET",
        `v3/conversations/${enc(a.id)}/pagedmembers?continuationToken=garbage`,
      );
      expect([wrong.status, garbage.status]).toEqual([400, 400]);
    });

    it("serves a 10,000-member team, clamping the page size to Teams' 500", async () => {
      const team = sim.addTeam({ memberCount: 10_000 });
      let token: string | undefined;
      let pages = 0;
      let members = 0;
      do {
        const query = `pageSize=1000${token === undefined ? "" : `&continuationToken=${enc(token)}`}`;
        const page = await call(
          sim,
          "GET",
          `v3/conversations/${enc(team.id)}/pagedmembers?${query}`,
        );
        const body = page.body as { members: unknown[]; continuationToken?: string };
        pages += 1;
        members += body.members.length;
        token = body.continuationToken;
      } while (token !== undefined);
      expect([pages, members]).toEqual([20, 10_000]);
    });

    it("delays answers on the route given latency, not on others", async () => {
      const user = sim.addUser();
      sim.setLatency(300, "sendActivity");
      const order: string[] = [];
      const slow = call(sim, "POST", sendPath(sim.personalConversationId(user)), {
        type: "message",
        text: "x",
      }).then(() => order.push("send"));
      const fast = call(sim, "POST", "v3/conversations", createBody(sim, user.id)).then(() =>
        order.push("create"),
      );
      await Promise.all([slow, fast]);
      expect(order).toEqual(["create", "send"]);
    });

    it("repeats the same random faults for the same seed", async () => {
      const user = sim.addUser();
      const path = sendPath(sim.personalConversationId(user));
      async function run(): Promise<number[]> {
        sim.setFaultRate({ rate: 0.5, statuses: [429, 503], seed: 42 });
        const statuses: number[] = [];
        for (let i = 0; i < 30; i += 1)
          statuses.push((await call(sim, "POST", path, { type: "message", text: "x" })).status);
        return statuses;
      }
      const first = await run();
      const second = await run();
      expect(second).toEqual(first);
      expect(new Set(first)).toEqual(new Set([201, 429, 503]));
    });
  });

  describe("rate limits", () => {
    let now = 1_700_000_000_000;
    let limited: TeamsSimulator;

    beforeEach(async () => {
      now = 1_700_000_000_000;
      limited = await startTeamsSimulator({ enforceRateLimits: true, clock: () => now });
    });

    afterEach(async () => {
      await limited.close();
    });

    async function send(
      conversationId: string,
    ): Promise<{ status: number; retryAfter: string | null }> {
      return call(limited, "POST", sendPath(conversationId), { type: "message", text: "x" });
    }

    it("answers 429 with Retry-After past 7 sends a second in one conversation", async () => {
      const id = limited.personalConversationId(limited.addUser());
      const statuses: number[] = [];
      for (let i = 0; i < 8; i += 1) statuses.push((await send(id)).status);
      expect(statuses).toEqual([201, 201, 201, 201, 201, 201, 201, 429]);
      expect((await send(id)).retryAfter).toBe("1");

      // One second on, the 2-second window (8) still holds only one more.
      now += 1000;
      expect([(await send(id)).status, (await send(id)).status]).toEqual([201, 429]);
      expect(limited.stats().rateLimited).toBe(3);
      expect(limited.stats().byRoute.sendActivity).toEqual({ 201: 8, 429: 3 });
    });

    it("keeps conversations apart but holds every request to 50 a second per bot and tenant", async () => {
      const users = limited.addUsers(60);
      const statuses: number[] = [];
      for (const user of users)
        statuses.push((await send(limited.personalConversationId(user))).status);
      expect(statuses.filter((s) => s === 201)).toHaveLength(50);
      expect(statuses.slice(50).every((s) => s === 429)).toBe(true);
      now += 1000;
      expect((await send(limited.personalConversationId(users[55]!))).status).toBe(201);
    });

    it("holds each tenant to its own 50 a second, and records the tenant of each call", async () => {
      const otherTenant = "5f0c1d2e-0000-4000-8000-000000000002";
      const home = limited.addUsers(55);
      const other = limited.addUsers(55, { tenantId: otherTenant });
      const statuses = { home: [] as number[], other: [] as number[] };
      for (let i = 0; i < 55; i += 1) {
        statuses.home.push((await send(limited.personalConversationId(home[i]!))).status);
        statuses.other.push((await send(limited.personalConversationId(other[i]!))).status);
      }
      expect(statuses.home.filter((s) => s === 201)).toHaveLength(50);
      expect(statuses.other.filter((s) => s === 201)).toHaveLength(50);
      const tenants = limited.requests.map((r) => r.tenantId);
      expect(tenants.filter((t) => t === otherTenant)).toHaveLength(55);
      expect(tenants.filter((t) => t === limited.tenantId)).toHaveLength(55);

      // A create names the user's tenant; the home tenant is not theirs.
      const user = other[0]!;
      const create = (tenant: string) =>
        call(limited, "POST", "v3/conversations", {
          ...createBody(limited, user.aadObjectId),
          tenantId: tenant,
          channelData: { tenant: { id: tenant } },
        });
      now += 1000;
      expect((await create(otherTenant)).status).toBe(201);
      expect((await create(limited.tenantId)).status).toBe(404);
    });

    it("holds a conversation to 60 sends in 30 seconds", async () => {
      const id = limited.personalConversationId(limited.addUser());
      const perSecond = PER_BOT_PER_CONVERSATION_LIMITS.sendToConversation[0]!.limit;
      let accepted = 0;
      for (let second = 0; second < 29; second += 1) {
        // Paced under the 1- and 2-second windows: 4 per second.
        for (let i = 0; i < 4; i += 1) if ((await send(id)).status === 201) accepted += 1;
        now += 1000;
      }
      expect(perSecond).toBe(7);
      expect(accepted).toBe(60);
    });

    it("limits creating conversations per user like sends", async () => {
      const user = limited.addUser();
      const statuses: number[] = [];
      for (let i = 0; i < 8; i += 1)
        statuses.push(
          (await call(limited, "POST", "v3/conversations", createBody(limited, user.id))).status,
        );
      expect(statuses.filter((s) => s === 429)).toHaveLength(1);
    });
  });

  describe("inbound activities", () => {
    let bot: Server;
    let received: { headers: IncomingMessage["headers"]; body: Record<string, unknown> }[];
    let endpoint: string;

    beforeEach(async () => {
      received = [];
      bot = createServer((req, res) => {
        let raw = "";
        req.on("data", (chunk: Buffer) => (raw += chunk.toString("utf8")));
        req.on("end", () => {
          received.push({ headers: req.headers, body: JSON.parse(raw) as Record<string, unknown> });
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ ok: true }));
        });
      });
      await new Promise<void>((resolve) => bot.listen(0, "127.0.0.1", resolve));
      endpoint = `http://127.0.0.1:${(bot.address() as AddressInfo).port}/api/messages`;
    });

    afterEach(async () => {
      await new Promise<void>((resolve) => bot.close(() => resolve()));
    });

    it("posts a personal install as Teams does and returns the bot's answer", async () => {
      const alice = sim.addUser({ name: "Alice Adams" });
      const result = await sim.send(sim.activities.personalInstall(alice), {
        endpoint,
        headers: { authorization: "Bearer test" },
      });
      expect(result).toMatchObject({ status: 200, body: { ok: true } });
      expect(received[0]?.headers.authorization).toBe("Bearer test");
      expect(received[0]?.body).toMatchObject({
        type: "installationUpdate",
        action: "add",
        channelId: "msteams",
        serviceUrl: sim.serviceUrl,
        from: { id: alice.id, aadObjectId: alice.aadObjectId, name: "Alice Adams" },
        recipient: { id: sim.botId },
        conversation: {
          id: sim.personalConversationId(alice),
          conversationType: "personal",
          tenantId: sim.tenantId,
        },
        channelData: { tenant: { id: sim.tenantId } },
        locale: "en-US",
      });
    });

    it("gives every activity a fresh id and timestamps", () => {
      const user = sim.addUser();
      const a = sim.activities.message(user, "hi");
      const b = sim.activities.personalConversationUpdate(user);
      expect(a.id).not.toBe(b.id);
      expect(Date.parse(a.timestamp)).not.toBeNaN();
      expect(a.localTimestamp).toMatch(/[+-]\d\d:\d\d$/);
      expect(b.membersAdded).toEqual([{ id: sim.botId }]);
    });

    it("builds team events with channelData.team and eventType", () => {
      const installer = sim.addUser();
      const team = sim.addTeam({ name: "Finance", members: [installer], memberCount: 2 });
      const install = sim.activities.teamInstall(team, installer);
      expect(install).toMatchObject({
        type: "conversationUpdate",
        membersAdded: [{ id: sim.botId }],
        conversation: { id: team.id, conversationType: "channel", tenantId: sim.tenantId },
        channelData: {
          eventType: "teamMemberAdded",
          team: { id: team.id, name: "Finance", aadGroupId: team.aadGroupId },
          tenant: { id: sim.tenantId },
          settings: { selectedChannel: { id: team.id } },
        },
      });
      const newcomer = sim.addUser();
      expect(sim.activities.teamMembersAdded(team, [newcomer])).toMatchObject({
        membersAdded: [{ id: newcomer.id, aadObjectId: newcomer.aadObjectId }],
        channelData: { eventType: "teamMemberAdded" },
      });
      expect(sim.activities.teamMembersRemoved(team, [newcomer])).toMatchObject({
        membersRemoved: [{ id: newcomer.id }],
        channelData: { eventType: "teamMemberRemoved" },
      });
      expect(sim.activities.botRemovedFromTeam(team)).toMatchObject({
        membersRemoved: [{ id: sim.botId }],
        channelData: { eventType: "teamMemberRemoved" },
      });
      expect(sim.activities.teamDeleted(team).channelData.eventType).toBe("teamDeleted");
      expect(sim.activities.personalUninstall(installer)).toMatchObject({
        type: "installationUpdate",
        action: "remove",
      });
    });

    it("renders a channel @mention of the bot and users with mention entities", () => {
      const [author, alice, bob] = sim.addUsers(3);
      const team = sim.addTeam({ members: [author!, alice!, bob!] });
      const activity = sim.activities.channelMention(
        team,
        author!,
        [alice!, bob!],
        "please review",
      );
      expect(activity.text).toBe(
        `<at>Herald</at> <at>${alice!.name}</at> <at>${bob!.name}</at> please review`,
      );
      expect(activity.conversation.id.startsWith(`${team.id};messageid=`)).toBe(true);
      const mentions = (activity.entities as { type: string; mentioned?: { id: string } }[]).filter(
        (e) => e.type === "mention",
      );
      expect(mentions.map((m) => m.mentioned?.id)).toEqual([sim.botId, alice!.id, bob!.id]);
      expect(activity.from).toEqual({
        id: author!.id,
        name: author!.name,
        aadObjectId: author!.aadObjectId,
      });
    });
  });
});
