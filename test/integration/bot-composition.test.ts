import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { HttpRequest, type HttpResponseInit, InvocationContext } from "@azure/functions";

import { messages } from "../../functions/messages";
import { work } from "../../functions/work";
import { LocalQueue } from "../../shared/queue/local-queue";
import { registeredFunctions } from "../../shared/registry";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";

/**
 * The handler exactly as registered with the Functions host: it builds its services from the
 * app settings on first use (Table Storage, the local queue) and serves Teams activities.
 */
describe("functions/messages", () => {
  const saved = { ...process.env };
  let sim: TeamsSimulator;
  let queueDirectory: string;

  beforeAll(async () => {
    sim = await startTeamsSimulator();
    queueDirectory = await mkdtemp(join(tmpdir(), "herald-bot-"));
    Object.assign(process.env, {
      TableStorageConnection: process.env.HERALD_TEST_TABLES_CONNECTION,
      TableNamePrefix: `t${randomBytes(5).toString("hex")}`,
      LocalQueueDirectory: queueDirectory,
    });
  });

  afterAll(async () => {
    process.env = saved;
    await sim.close();
    await rm(queueDirectory, { recursive: true, force: true });
  });

  async function call(method: string, body?: unknown): Promise<HttpResponseInit> {
    const request = new HttpRequest({
      method,
      url: "http://127.0.0.1:7071/api/messages",
      headers: { "content-type": "application/json" },
      ...(body !== undefined ? { body: { string: JSON.stringify(body) } } : {}),
    });
    const context = new InvocationContext({ invocationId: randomUUID(), functionName: "messages" });
    return messages(request, context);
  }

  it("is registered for POST and HEAD on route messages, anonymous at the host level", () => {
    const registration = registeredFunctions().find((r) => r.name === "messages");
    expect(registration).toMatchObject({
      kind: "http",
      options: { methods: ["POST", "HEAD"], authLevel: "anonymous", route: "messages" },
    });
  });

  it("queues a personal install's welcome on the work queue, which the work function sends", async () => {
    const workQueue = new LocalQueue({ directory: queueDirectory, queueName: "herald-work" });
    const ada = sim.addUser({ name: "Ada Lovelace" });
    await expect(call("HEAD")).resolves.toMatchObject({ status: 200 });
    await expect(call("POST", sim.activities.personalInstall(ada))).resolves.toMatchObject({
      status: 200,
    });
    expect(sim.messagesToUser(ada)).toHaveLength(0);

    const [welcome, ...rest] = await workQueue.receive(10);
    expect(rest).toHaveLength(0);
    expect(welcome).toMatchObject({
      applicationProperties: { heraldKind: "welcome" },
      body: { scope: "personal", tenantId: sim.tenantId, teamsUserId: ada.id },
    });
    await work(
      welcome!.body,
      new InvocationContext({
        invocationId: randomUUID(),
        functionName: "work",
        triggerMetadata: {
          messageId: welcome!.messageId,
          deliveryCount: 1,
          applicationProperties: welcome!.applicationProperties,
        },
      }),
    );
    await workQueue.complete(welcome!);
    expect(sim.messagesToUser(ada)).toHaveLength(1);
  });

  it("queues a team's roster sync and welcome on the work queue, naming the team only", async () => {
    const workQueue = new LocalQueue({ directory: queueDirectory, queueName: "herald-work" });
    const team = sim.addTeam({ memberCount: 2 });
    await expect(
      call("POST", sim.activities.teamInstall(team, team.members[0]!)),
    ).resolves.toMatchObject({ status: 200 });
    const received = await workQueue.receive(10);
    const sync = received.find((m) => m.applicationProperties.heraldKind === "roster-sync");
    expect(sync?.body).toEqual({ tenantId: sim.tenantId, teamId: team.id });
    expect(received.map((m) => m.applicationProperties.heraldKind).sort()).toEqual(
      expect.arrayContaining(["roster-sync", "welcome"]) as unknown,
    );
  });
});
