import { createServer, type Server, type Socket } from "node:net";

import type { AccessToken, TokenCredential } from "@azure/identity";

import { ConfigError } from "../../shared/errors";
import { CatalogAppIds } from "../../shared/graph/catalog-app-ids";
import { FetchGraphClient } from "../../shared/graph/fetch-graph-client";
import { GraphError } from "../../shared/graph/graph-error";
import type { GraphPort, GroupMember } from "../../shared/graph/graph-port";
import { GRAPH_PERMISSIONS } from "../../shared/graph/permissions";
import { memoryLogger } from "../../shared/logging";
import { type GraphSimulator, startGraphSimulator } from "../graph-simulator";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { type Listener, startListener } from "../support/listener";

const MANIFEST_ID = "6f1c2f2e-8d7a-4c55-9d55-3a0f4c1b2e10";

async function graphError(promise: Promise<unknown>): Promise<GraphError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof GraphError) return error;
    throw error;
  }
  throw new Error("expected a GraphError");
}

describe("FetchGraphClient against the Graph simulator", () => {
  let sim: GraphSimulator;
  let client: FetchGraphClient;
  let logger: ReturnType<typeof memoryLogger>;

  beforeEach(async () => {
    sim = await startGraphSimulator();
    logger = memoryLogger();
    client = new FetchGraphClient({ endpoint: sim.endpoint, credential: undefined, logger });
  });

  afterEach(async () => {
    await sim.close();
  });

  describe("getUser", () => {
    it("finds a user by UPN and by object id, with the user type", async () => {
      const alice = sim.addUser({
        userPrincipalName: "alice@contoso.example",
        displayName: "Alice",
      });
      const expected = {
        kind: "found",
        user: {
          id: alice.id,
          userPrincipalName: "alice@contoso.example",
          displayName: "Alice",
          userType: "Member",
        },
      };
      expect(await client.getUser("Alice@Contoso.example")).toEqual(expected);
      expect(await client.getUser(alice.id)).toEqual(expected);
    });

    it("answers not-found for a UPN Graph does not know", async () => {
      expect(await client.getUser("nobody@contoso.example")).toEqual({ kind: "not-found" });
    });

    it("calls without a token in anonymous mode", async () => {
      await client.getUser("nobody@contoso.example");
      expect(sim.requests.map((r) => r.hasAuthorization)).toEqual([false]);
    });
  });

  describe("the app catalog", () => {
    it("finds the catalog id by the manifest id, whatever its case", async () => {
      const app = sim.publishApp({ externalId: MANIFEST_ID });
      expect(await client.findAppByExternalId(MANIFEST_ID.toUpperCase())).toEqual({
        kind: "found",
        catalogAppId: app.id,
      });
      expect(sim.requests[0]?.query.$filter).toBe(`externalId eq '${MANIFEST_ID.toUpperCase()}'`);
    });

    it("answers not-found while the app is not yet published", async () => {
      sim.publishApp({ externalId: MANIFEST_ID, published: false });
      expect(await client.findAppByExternalId(MANIFEST_ID)).toEqual({ kind: "not-found" });
    });

    it("is looked up once per process by CatalogAppIds, and never when the catalog id is configured", async () => {
      const app = sim.publishApp({ externalId: MANIFEST_ID });
      const ids = new CatalogAppIds(client, { teamsAppId: MANIFEST_ID });
      const results = await Promise.all([ids.resolve(), ids.resolve(), ids.resolve()]);
      expect(results).toEqual(Array(3).fill({ kind: "found", catalogAppId: app.id }));
      expect(await ids.resolve()).toEqual({ kind: "found", catalogAppId: app.id });
      expect(sim.countRoute("listCatalogApps")).toBe(1);

      const configured = new CatalogAppIds(client, {
        teamsAppId: MANIFEST_ID,
        teamsAppCatalogId: app.id,
      });
      expect(await configured.resolve()).toEqual({ kind: "found", catalogAppId: app.id });
      expect(sim.countRoute("listCatalogApps")).toBe(1);
    });
  });

  describe("installing the app for a user", () => {
    it("answers installed the first time and already-installed after, binding the catalog app", async () => {
      const app = sim.publishApp({ externalId: MANIFEST_ID });
      const bob = sim.addUser();
      expect(await client.installAppForUser(bob.id, app.id)).toEqual({ kind: "installed" });
      expect(await client.installAppForUser(bob.id, app.id)).toEqual({ kind: "already-installed" });
      expect(sim.requests.map((r) => [r.route, r.status])).toEqual([
        ["installApp", 201],
        ["installApp", 409],
      ]);
      expect(sim.requests[0]?.body).toEqual({ "teamsApp@odata.bind": sim.bindingFor(app) });
    });

    it("finds the installation and its chat once Teams has created it", async () => {
      const app = sim.publishApp({ externalId: MANIFEST_ID });
      const carol = sim.addUser();
      expect(await client.findInstallation(carol.id, app.id)).toEqual({ kind: "not-found" });
      await client.installAppForUser(carol.id, app.id);
      const found = await client.findInstallation(carol.id, app.id);
      expect(found).toEqual({ kind: "found", installationId: sim.installationOf(carol, app)?.id });
      const installationId = found.kind === "found" ? found.installationId : "";

      sim.setChat(carol, { kind: "pending", chatId: "19:carol-chat@unq.gbl.spaces" });
      expect(await client.getInstalledAppChat(carol.id, installationId)).toEqual({
        kind: "not-found",
      });
      sim.makeChatAvailable(carol);
      expect(await client.getInstalledAppChat(carol.id, installationId)).toEqual({
        kind: "found",
        chatId: "19:carol-chat@unq.gbl.spaces",
      });
    });

    it("is refused by the simulator when the binding names no catalog app (400 → bad-request)", async () => {
      const dave = sim.addUser();
      const error = await graphError(
        client.installAppForUser(dave.id, "00000000-0000-4000-8000-00000000dead"),
      );
      expect([error.kind, error.status, error.retryable]).toEqual(["bad-request", 400, false]);
    });
  });

  describe("group members", () => {
    it("lists 1,200 transitive user members over several pages, with guests marked", async () => {
      const members = sim.addUsers(1000);
      const guests = sim.addUsers(150, { userType: "Guest" });
      const nested = sim.addGroup({
        members: [...sim.addUsers(50), members[0]!],
        otherMemberCount: 5,
      });
      const group = sim.addGroup({
        members: [...members, ...guests, nested],
        otherMemberCount: 20,
      });
      const paged = new FetchGraphClient({
        endpoint: sim.endpoint,
        credential: undefined,
        groupPageSize: 250,
      });

      const users: GroupMember[] = [];
      let link: string | undefined;
      let pages = 0;
      do {
        const page = await paged.listGroupUserMembers(group.id, link);
        if (page.kind !== "page") throw new Error("group not found");
        users.push(...page.users);
        link = page.nextLink;
        pages += 1;
      } while (link !== undefined);

      expect(users).toHaveLength(1200);
      expect(new Set(users.map((u) => u.id)).size).toBe(1200);
      expect(pages).toBe(5);
      expect(users.filter((u) => u.userType === "Guest")).toHaveLength(150);
      expect(sim.requests[0]?.query).toMatchObject({
        $select: "id,userPrincipalName,displayName,userType",
        $top: "250",
      });
    });

    it("answers not-found for a group Graph does not know", async () => {
      expect(await client.listGroupUserMembers("7c9e6679-7425-40de-944b-e07fc1f90ae7")).toEqual({
        kind: "not-found",
      });
    });

    it("refuses a next-page link that points off the configured endpoint, without calling it", async () => {
      const listener = await startListener();
      try {
        const group = sim.addGroup({ members: sim.addUsers(2) });
        sim.failNext("listGroupUserMembers", {
          status: 200,
          body: {
            value: [],
            "@odata.nextLink": `${listener.url}v1.0/groups/${group.id}/transitiveMembers`,
          },
        });
        const fromAnswer = await graphError(client.listGroupUserMembers(group.id));
        expect(fromAnswer.kind).toBe("invalid-response");
        expect(fromAnswer.message).toMatch(/not at GraphEndpoint .*not followed/);

        const given = await graphError(
          client.listGroupUserMembers(group.id, `${listener.url}v1.0/steal`),
        );
        expect(given.kind).toBe("invalid-response");
        expect(listener.hits).toEqual([]);
      } finally {
        await listener.close();
      }
    });
  });

  describe("failures", () => {
    it("turns 403 into forbidden, naming the permission an admin must grant", async () => {
      sim.revoke(GRAPH_PERMISSIONS.readGroupMembers);
      const group = sim.addGroup();
      const error = await graphError(client.listGroupUserMembers(group.id));
      expect([error.kind, error.status, error.code, error.permission]).toEqual([
        "forbidden",
        403,
        "Authorization_RequestDenied",
        "GroupMember.Read.All",
      ]);
      expect(error.message).toContain("GroupMember.Read.All");
      expect(error.retryable).toBe(false);
    });

    it("names TeamsAppInstallation.ReadWriteSelfForUser.All when an install is forbidden", async () => {
      sim.revoke(GRAPH_PERMISSIONS.installSelf);
      const app = sim.publishApp({ externalId: MANIFEST_ID });
      const erin = sim.addUser({ userPrincipalName: "erin@contoso.example" });
      const error = await graphError(client.installAppForUser(erin.id, app.id));
      expect(error.message).toContain("TeamsAppInstallation.ReadWriteSelfForUser.All");
      expect(error.message).toContain("webApplicationInfo");
    });

    it("turns 429 into throttled with Retry-After in milliseconds", async () => {
      sim.failNext("getUser", { status: 429, retryAfter: 7 });
      const error = await graphError(client.getUser("someone@contoso.example"));
      expect([error.kind, error.retryAfterMs, error.retryable]).toEqual(["throttled", 7000, true]);
    });

    it("reads a Retry-After date and clamps a huge one", async () => {
      const now = Date.parse("2026-12-01T12:00:00Z");
      const clocked = new FetchGraphClient({
        endpoint: sim.endpoint,
        credential: undefined,
        now: () => now,
      });
      sim.failNext("getUser", { status: 429, retryAfter: "Tue, 01 Dec 2026 12:00:30 GMT" });
      expect((await graphError(clocked.getUser("x@contoso.example"))).retryAfterMs).toBe(30_000);
      sim.failNext("getUser", { status: 503, retryAfter: 86_400 });
      const clamped = await graphError(clocked.getUser("x@contoso.example"));
      expect([clamped.kind, clamped.retryAfterMs]).toEqual(["transient", 5 * 60 * 1000]);
    });

    it("turns 5xx into transient", async () => {
      sim.failNext("*", { status: 502 });
      expect((await graphError(client.findAppByExternalId(MANIFEST_ID))).kind).toBe("transient");
    });

    it("turns an answer that is not JSON into unreadable, which a later attempt may pass", async () => {
      sim.failNext("getUser", { status: 200, rawBody: "<html>gateway</html>" });
      const error = await graphError(client.getUser("x@contoso.example"));
      expect(error.kind).toBe("unreadable");
      expect(error.retryable).toBe(true);
    });

    it("turns an answer of the wrong shape into unreadable, which a later attempt may pass", async () => {
      sim.failNext("listCatalogApps", { status: 200, body: { value: [{ name: "no id" }] } });
      const error = await graphError(client.findAppByExternalId(MANIFEST_ID));
      expect(error.kind).toBe("unreadable");
      expect(error.retryable).toBe(true);
    });

    it("logs failures without the user's UPN or id", async () => {
      sim.revoke(GRAPH_PERMISSIONS.readUsers);
      await graphError(client.getUser("frank@contoso.example"));
      const [line] = logger.lines;
      expect(line?.line).toMatch(/graph call failed .*"kind":"forbidden"/);
      expect(line?.line).not.toContain("frank");
      expect(line?.line).toMatch(/"subject":"userPrincipalName#[0-9a-f]{16}"/);
    });
  });
});

describe("FetchGraphClient without an answer", () => {
  let silent: Server;
  let port: number;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    // Accepts connections and never answers.
    silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    port = (silent.address() as { port: number }).port;
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => {
      silent.close(() => resolve());
    });
  });

  it("gives up at the deadline as transient, without retrying", async () => {
    const client = new FetchGraphClient({
      endpoint: `http://127.0.0.1:${port}`,
      credential: undefined,
      timeoutMs: 200,
    });
    const error = await graphError(client.getUser("x@contoso.example"));
    expect([error.kind, error.status, error.retryable]).toEqual(["transient", undefined, true]);
  });

  it("treats a refused connection as transient", async () => {
    const closed = await startListener();
    const url = closed.url.replace(/\/$/, "");
    await closed.close();
    const client = new FetchGraphClient({ endpoint: url, credential: undefined });
    expect((await graphError(client.getUser("x@contoso.example"))).kind).toBe("transient");
  });
});

describe("FetchGraphClient with a credential", () => {
  function stubCredential(): TokenCredential & { scopes: string[] } {
    const scopes: string[] = [];
    return {
      scopes,
      getToken(scope: string | string[]): Promise<AccessToken> {
        scopes.push(String(scope));
        return Promise.resolve({ token: "t0k3n", expiresOnTimestamp: Date.now() + 3600_000 });
      },
    };
  }

  it("refuses a plain-http endpoint, where the token would travel in clear", () => {
    expect(
      () => new FetchGraphClient({ endpoint: "http://127.0.0.1:1", credential: stubCredential() }),
    ).toThrow(ConfigError);
  });

  it("refuses a non-loopback endpoint without a credential", () => {
    expect(
      () =>
        new FetchGraphClient({ endpoint: "https://graph.microsoft.com", credential: undefined }),
    ).toThrow(/loopback/);
  });

  it("sends a bearer token for the endpoint's .default scope and reuses it", async () => {
    const credential = stubCredential();
    const seen: { url: string; authorization: string | undefined; redirect: string | undefined }[] =
      [];
    const fakeFetch: typeof fetch = (input, init) => {
      const headers = (init?.headers ?? {}) as Record<string, string>;
      seen.push({
        url: typeof input === "string" ? input : input instanceof URL ? input.href : input.url,
        authorization: headers.authorization,
        redirect: init?.redirect,
      });
      return Promise.resolve(
        new Response(JSON.stringify({ id: "u1", userType: null }), { status: 200 }),
      );
    };
    const client: GraphPort = new FetchGraphClient({
      endpoint: "https://graph.microsoft.us",
      credential,
      fetch: fakeFetch,
    });
    await client.getUser("a@contoso.example");
    expect(await client.getUser("b@contoso.example")).toEqual({
      kind: "found",
      user: { id: "u1", userPrincipalName: undefined, displayName: undefined, userType: undefined },
    });
    expect(credential.scopes).toEqual(["https://graph.microsoft.us/.default"]);
    expect(seen.map((s) => s.authorization)).toEqual(["Bearer t0k3n", "Bearer t0k3n"]);
    expect(seen[0]?.url).toBe(
      "https://graph.microsoft.us/v1.0/users/a%40contoso.example?%24select=id%2CuserPrincipalName%2CdisplayName%2CuserType",
    );
    expect(seen[0]?.redirect).toBe("error");
  });
});

describe("Graph simulator install activities", () => {
  let teams: TeamsSimulator;
  let bot: Listener;

  beforeEach(async () => {
    teams = await startTeamsSimulator();
    bot = await startListener();
  });

  afterEach(async () => {
    await bot.close();
    await teams.close();
  });

  async function installFor(graph: GraphSimulator) {
    const app = graph.publishApp({ externalId: MANIFEST_ID });
    const user = graph.addUser({ userPrincipalName: "gina@contoso.example", displayName: "Gina" });
    const client = new FetchGraphClient({ endpoint: graph.endpoint, credential: undefined });
    await client.installAppForUser(user.id, app.id);
    const installation = await client.findInstallation(user.id, app.id);
    const installationId = installation.kind === "found" ? installation.installationId : "";
    return { user, client, installationId };
  }

  it("posts installationUpdate and conversationUpdate for the user's 1:1 to the bot after a successful install", async () => {
    const graph = await startGraphSimulator({ teams, botEndpoint: bot.url });
    try {
      const { user, client, installationId } = await installFor(graph);
      await graph.settled();

      const teamsUser = teams.findUser(user.id)!;
      expect(teamsUser.userPrincipalName).toBe("gina@contoso.example");
      const conversationId = teams.personalConversationId(teamsUser);
      const bodies = bot.received.map((r) => r.body as Record<string, unknown>);
      expect(bodies.map((b) => [b.type, b.action, b.membersAdded])).toEqual([
        ["installationUpdate", "add", undefined],
        ["conversationUpdate", undefined, [{ id: teams.botId }]],
      ]);
      for (const body of bodies) {
        expect(body).toMatchObject({
          serviceUrl: teams.serviceUrl,
          from: { aadObjectId: user.id },
          conversation: {
            id: conversationId,
            conversationType: "personal",
            tenantId: teams.tenantId,
          },
        });
      }
      // The chat Graph gives is the conversation Teams announced, so either may come first.
      expect(await client.getInstalledAppChat(user.id, installationId)).toEqual({
        kind: "found",
        chatId: conversationId,
      });
      expect(graph.postedActivities.map((p) => [p.type, p.status])).toEqual([
        ["installationUpdate", 200],
        ["conversationUpdate", 200],
      ]);
    } finally {
      await graph.close();
    }
  });

  it("holds the activities until released, so the chat can arrive first", async () => {
    const graph = await startGraphSimulator({
      teams,
      botEndpoint: bot.url,
      installActivities: "manual",
    });
    try {
      const { user, client, installationId } = await installFor(graph);
      expect((await client.getInstalledAppChat(user.id, installationId)).kind).toBe("found");
      expect(bot.received).toEqual([]);
      await graph.releaseInstallActivities();
      expect(bot.received).toHaveLength(2);
    } finally {
      await graph.close();
    }
  });

  it("can keep the chat unknown until the activities are posted, so the conversationUpdate arrives first", async () => {
    const graph = await startGraphSimulator({
      teams,
      botEndpoint: bot.url,
      installActivities: "manual",
      chatAvailability: "after-activities",
      activityOrder: "conversation-first",
    });
    try {
      const { user, client, installationId } = await installFor(graph);
      expect(await client.getInstalledAppChat(user.id, installationId)).toEqual({
        kind: "not-found",
      });
      await graph.releaseInstallActivities();
      expect((bot.received[0]?.body as { type?: string }).type).toBe("conversationUpdate");
      expect((await client.getInstalledAppChat(user.id, installationId)).kind).toBe("found");
    } finally {
      await graph.close();
    }
  });

  it("posts nothing for an install that was already there (409)", async () => {
    const graph = await startGraphSimulator({ teams, botEndpoint: bot.url });
    try {
      const { user, client } = await installFor(graph);
      await graph.settled();
      const app = graph.installations()[0]!;
      await client.installAppForUser(user.id, app.catalogAppId);
      await graph.settled();
      expect(bot.received).toHaveLength(2);
    } finally {
      await graph.close();
    }
  });
});

describe("Graph simulator limits and authorization", () => {
  it("answers 429 with Retry-After past 30 installs in a second, when enforcing limits", async () => {
    const now = 1_800_000_000_000;
    const sim = await startGraphSimulator({ enforceRateLimits: true, clock: () => now });
    try {
      const app = sim.publishApp({ externalId: MANIFEST_ID });
      const users = sim.addUsers(31);
      const client = new FetchGraphClient({ endpoint: sim.endpoint, credential: undefined });
      const outcomes = await Promise.all(
        users.map((u) =>
          client.installAppForUser(u.id, app.id).then(
            (r) => r.kind,
            (e: GraphError) => `${e.kind}:${e.retryAfterMs}`,
          ),
        ),
      );
      expect(outcomes.filter((o) => o === "installed")).toHaveLength(30);
      expect(outcomes.filter((o) => o === "throttled:1000")).toHaveLength(1);
      expect(sim.installations()).toHaveLength(30);
    } finally {
      await sim.close();
    }
  });

  it("answers 401 to a call without a bearer token when told to require one", async () => {
    const sim = await startGraphSimulator({ requireAuthorization: true });
    try {
      const client = new FetchGraphClient({ endpoint: sim.endpoint, credential: undefined });
      const error = await graphError(client.getUser("x@contoso.example"));
      expect([error.kind, error.status]).toEqual(["unauthorized", 401]);
    } finally {
      await sim.close();
    }
  });
});
