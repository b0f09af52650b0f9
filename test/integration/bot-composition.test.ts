import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { HttpRequest, type HttpResponseInit, InvocationContext } from "@azure/functions";

import { messages } from "../../functions/messages";
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

  it("welcomes a personal install and queues a team's roster sync on the configured queue", async () => {
    const ada = sim.addUser({ name: "Ada Lovelace" });
    await expect(call("HEAD")).resolves.toMatchObject({ status: 200 });
    await expect(call("POST", sim.activities.personalInstall(ada))).resolves.toMatchObject({
      status: 200,
    });
    expect(sim.messagesToUser(ada)).toHaveLength(1);

    const team = sim.addTeam({ memberCount: 2 });
    await expect(
      call("POST", sim.activities.teamInstall(team, team.members[0]!)),
    ).resolves.toMatchObject({ status: 200 });
    const received = await new LocalQueue({ directory: queueDirectory }).receive(10);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({
      applicationProperties: { heraldKind: "roster-sync" },
      body: { tenantId: sim.tenantId, teamId: team.id, serviceUrl: sim.serviceUrl },
    });
  });
});
