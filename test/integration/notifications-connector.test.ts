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
