import { ClaimsIdentity } from "botframework-connector";

import { loadConfig } from "../../shared/config";
import {
  BotbuilderConnector,
  botFrameworkAuthentication,
} from "../../shared/connector/botbuilder-connector";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";

describe("BotbuilderConnector", () => {
  let sim: TeamsSimulator;
  let connector: BotbuilderConnector;

  beforeAll(async () => {
    sim = await startTeamsSimulator();
    connector = BotbuilderConnector.fromConfig(
      loadConfig({ TableStorageConnection: "UseDevelopmentStorage=true" }),
    );
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  it("creates a 1:1 conversation and posts an activity into it", async () => {
    const user = sim.addUser();
    const created = await connector.createPersonalConversation({
      serviceUrl: sim.serviceUrl,
      tenantId: sim.tenantId,
      teamsUserId: user.id,
    });
    expect(created).toEqual({ kind: "created", conversationId: sim.personalConversationId(user) });
    const sent = await connector.sendActivity({
      serviceUrl: sim.serviceUrl,
      conversationId: sim.personalConversationId(user),
      activity: { type: "message", text: "hello" },
    });
    expect(sent.kind).toBe("sent");
    expect(sim.messagesToUser(user).map((a) => a.text)).toEqual(["hello"]);
  });

  it.each([
    [429, "throttled"],
    [503, "transient"],
    [500, "failed"],
    [403, "recipientGone"],
    [404, "conversationGone"],
    [400, "rejected"],
  ] as const)("answers %i as %s after exactly one call", async (status, kind) => {
    const user = sim.addUser();
    sim.failNext("sendActivity", { status, retryAfterSeconds: status === 429 ? 2 : undefined });
    const result = await connector.sendActivity({
      serviceUrl: sim.serviceUrl,
      conversationId: sim.personalConversationId(user),
      activity: { type: "message", text: "hello" },
    });
    expect(result.kind).toBe(kind);
    expect(sim.countRoute("sendActivity")).toBe(1);
  });

  it.each([
    ["an HTML page", 200, "<html>gateway</html>", "text/html"],
    ["cut-off JSON", 201, '{"id":"1:', "application/json"],
    ["JSON without an id", 201, "{}", "application/json"],
  ] as const)(
    "answers a success it cannot read (%s) as transient after exactly one call",
    async (_what, status, rawBody, contentType) => {
      const user = sim.addUser();
      sim.failNext("sendActivity", { status, rawBody, contentType });
      sim.failNext("createConversation", { status, rawBody, contentType });
      const target = {
        serviceUrl: sim.serviceUrl,
        conversationId: sim.personalConversationId(user),
        activity: { type: "message", text: "hello" },
      };
      expect(await connector.sendActivity(target)).toMatchObject({
        kind: "transient",
        status,
        code: "UnreadableAnswer",
      });
      expect(
        await connector.createPersonalConversation({
          serviceUrl: sim.serviceUrl,
          tenantId: sim.tenantId,
          teamsUserId: user.id,
        }),
      ).toMatchObject({ kind: "transient", status, code: "UnreadableAnswer" });
      expect(sim.countRoute("sendActivity")).toBe(1);
      expect(sim.countRoute("createConversation")).toBe(1);
    },
  );

  it("replaces a posted activity in place, then deletes it", async () => {
    const user = sim.addUser();
    const conversationId = sim.personalConversationId(user);
    const sent = await connector.sendActivity({
      serviceUrl: sim.serviceUrl,
      conversationId,
      activity: { type: "message", text: "Maintenance at 10:00" },
    });
    if (sent.kind !== "sent") throw new Error(`not sent: ${sent.kind}`);
    const posted = { serviceUrl: sim.serviceUrl, conversationId, activityId: sent.activityId };

    expect(
      await connector.updateActivity({
        ...posted,
        activity: { type: "message", text: "Maintenance at 11:00" },
      }),
    ).toEqual({ kind: "updated" });
    expect(sim.messagesToUser(user).map((a) => a.text)).toEqual(["Maintenance at 11:00"]);

    expect(await connector.deleteActivity(posted)).toEqual({ kind: "deleted" });
    expect(sim.activitiesIn(conversationId).map((a) => a.deleted)).toEqual([true]);
  });

  it("tells the caller when a call's request left over a new connection, before Teams answers, and not for calls on the kept-alive socket", async () => {
    // A Teams of its own (no kept-alive socket to it yet): the first call opens a connection, as
    // an instance's first does.
    const sim = await startTeamsSimulator({ latencyMs: 30 });
    const fresh = BotbuilderConnector.fromConfig(
      loadConfig({ TableStorageConnection: "UseDevelopmentStorage=true" }),
    );
    const user = sim.addUser();
    const seen: string[] = [];
    const hooks = (name: string) => ({ onWire: () => seen.push(`${name} left`) });
    const answered = <T>(name: string, result: T): T => {
      seen.push(`${name} answered`);
      return result;
    };
    const created = await fresh.createPersonalConversation(
      { serviceUrl: sim.serviceUrl, tenantId: sim.tenantId, teamsUserId: user.id },
      hooks("create"),
    );
    answered("create", created);
    if (created.kind !== "created") throw new Error(`not created: ${created.kind}`);
    const target = { serviceUrl: sim.serviceUrl, conversationId: created.conversationId };
    const sent = answered(
      "send",
      await fresh.sendActivity(
        { ...target, activity: { type: "message", text: "a" } },
        hooks("send"),
      ),
    );
    if (sent.kind !== "sent") throw new Error(`not sent: ${sent.kind}`);
    const posted = { ...target, activityId: sent.activityId };
    answered(
      "update",
      await fresh.updateActivity(
        { ...posted, activity: { type: "message", text: "b" } },
        hooks("update"),
      ),
    );
    answered("delete", await fresh.deleteActivity(posted, hooks("delete")));
    // A call without hooks (the member lookup, or a caller that does not pace) is not watched.
    await fresh.sendActivity({ ...target, activity: { type: "message", text: "c" } });

    // The first call opened the connection; the others reused it and left as they began.
    expect(seen).toEqual([
      "create left",
      "create answered",
      "send answered",
      "update answered",
      "delete answered",
    ]);
    await sim.close();
  });

  it("answers an update of an activity Teams does not have as 404, after one call", async () => {
    const user = sim.addUser();
    const result = await connector.updateActivity({
      serviceUrl: sim.serviceUrl,
      conversationId: sim.personalConversationId(user),
      activityId: "1700000000000",
      activity: { type: "message", text: "never sent" },
    });
    expect(result).toMatchObject({ kind: "conversationGone", status: 404 });
    expect(sim.countRoute("updateActivity")).toBe(1);
  });

  it("answers a dropped connection and a timeout as transient", async () => {
    const user = sim.addUser();
    const target = {
      serviceUrl: sim.serviceUrl,
      conversationId: sim.personalConversationId(user),
      activity: { type: "message", text: "hello" },
    };
    sim.failNext("sendActivity", { status: "connection-reset" });
    expect(await connector.sendActivity(target)).toMatchObject({
      kind: "transient",
      status: undefined,
    });

    const impatient = new BotbuilderConnector(
      botFrameworkAuthentication(
        loadConfig({ TableStorageConnection: "UseDevelopmentStorage=true" }),
      ),
      undefined,
      { timeoutMs: 50 },
    );
    sim.setLatency(500, "sendActivity");
    expect(await impatient.sendActivity(target)).toMatchObject({
      kind: "transient",
      status: undefined,
    });
    expect(sim.countRoute("sendActivity")).toBe(2);
  });

  it("is needed: botbuilder's own connector client retries a 429 inside the call", async () => {
    // The client botbuilder builds for CloudAdapter, untouched: core-rest-pipeline's default
    // retry policy answers Teams' 429 by waiting Retry-After and calling again.
    const auth = botFrameworkAuthentication(
      loadConfig({ TableStorageConnection: "UseDevelopmentStorage=true" }),
    );
    const client = await auth
      .createConnectorFactory(new ClaimsIdentity([]))
      .create(sim.serviceUrl, undefined);
    const user = sim.addUser();
    sim.failNext("sendActivity", { status: 429, retryAfterSeconds: 0 });
    await client.conversations.sendToConversation(sim.personalConversationId(user), {
      type: "message",
      text: "hello",
    });
    expect(sim.countRoute("sendActivity", 429)).toBe(1);
    expect(sim.countRoute("sendActivity", 201)).toBe(1);
  });
});
