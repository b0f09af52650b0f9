import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { HttpRequest, type HttpResponseInit, InvocationContext } from "@azure/functions";

import { messages } from "../../functions/messages";
import { work } from "../../functions/work";
import { startDraining } from "../../shared/local-host/queue-drain";
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

  /** What the process-wide services print at start-up (console: no invocation yet). */
  let startup: jest.SpiedFunction<typeof console.warn>;

  beforeAll(async () => {
    startup = jest.spyOn(console, "warn").mockImplementation(() => undefined);
    sim = await startTeamsSimulator();
    queueDirectory = await mkdtemp(join(tmpdir(), "herald-bot-"));
    Object.assign(process.env, {
      TableStorageConnection: process.env.HERALD_TEST_TABLES_CONNECTION,
      TableNamePrefix: `t${randomBytes(5).toString("hex")}`,
      LocalQueueDirectory: queueDirectory,
    });
  });

  afterAll(async () => {
    startup.mockRestore();
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
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: "messages",
      logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(" ")}`),
    });
    return messages(request, context);
  }

  /** What the handler logged through its invocation contexts, as the host would record it. */
  const logs: string[] = [];

  it("is registered for POST and HEAD on route messages, anonymous at the host level", () => {
    const registration = registeredFunctions().find((r) => r.name === "messages");
    expect(registration).toMatchObject({
      kind: "http",
      options: { methods: ["POST", "HEAD"], authLevel: "anonymous", route: "messages" },
    });
  });

  /** Drains the work queue into functions/work's handler, recording what it ran. */
  function drainWork(ran: { kind: unknown; body: unknown; sessionId: unknown }[]) {
    const workQueue = new LocalQueue({
      directory: queueDirectory,
      queueName: "herald-work",
      sessions: true,
    });
    return startDraining(
      workQueue,
      async (body, context) => {
        const meta = context.triggerMetadata as {
          applicationProperties?: Record<string, unknown>;
          sessionId?: unknown;
        };
        ran.push({
          kind: meta.applicationProperties?.heraldKind,
          body,
          sessionId: meta.sessionId,
        });
        await work(body, context);
      },
      { functionName: "work", pollIntervalMs: 20, logHandler: () => {} },
    );
  }

  it("queues a personal install's welcome on the work queue, which the work function sends", async () => {
    const ada = sim.addUser({ name: "Ada Lovelace" });
    await expect(call("HEAD")).resolves.toMatchObject({ status: 200 });
    await expect(call("POST", sim.activities.personalInstall(ada))).resolves.toMatchObject({
      status: 200,
    });
    expect(sim.messagesToUser(ada)).toHaveLength(0);
    // Its first request builds the services: without MicrosoftAppId they say auth is off.
    expect(startup.mock.calls.map((c) => String(c[0]))).toEqual([
      expect.stringMatching(/^BOT AUTHENTICATION IS OFF: MicrosoftAppId is not set/),
    ]);
    expect(logs).toContainEqual(expect.stringMatching(/^information: Welcome queued /));

    const ran: { kind: unknown; body: unknown; sessionId: unknown }[] = [];
    const drainer = drainWork(ran);
    try {
      await sim.waitFor(() => sim.messagesToUser(ada).length > 0, {
        timeoutMs: 10_000,
        description: "Ada's welcome",
      });
    } finally {
      await drainer.stop();
    }
    expect(sim.messagesToUser(ada)).toHaveLength(1);
    expect(ran[0]).toEqual({
      kind: "welcome",
      body: { scope: "personal", tenantId: sim.tenantId, teamsUserId: ada.id },
      sessionId: sim.tenantId.toLowerCase(),
    });
  });

  it("queues a team's roster sync and welcome on the work queue, naming the team only", async () => {
    const team = sim.addTeam({ memberCount: 2 });
    await expect(
      call("POST", sim.activities.teamInstall(team, team.members[0]!)),
    ).resolves.toMatchObject({ status: 200 });
    expect(logs).toContainEqual(
      expect.stringMatching(/^information: Team installed; roster sync and welcome queued /),
    );
    const ran: { kind: unknown; body: unknown; sessionId: unknown }[] = [];
    const drainer = drainWork(ran);
    try {
      await sim.waitFor(() => ran.some((r) => r.kind === "roster-sync"), {
        timeoutMs: 10_000,
        description: "the roster sync",
      });
    } finally {
      await drainer.stop();
    }
    expect(ran.find((r) => r.kind === "roster-sync")?.body).toEqual({
      tenantId: sim.tenantId,
      teamId: team.id,
      queuedAt: expect.any(String) as unknown,
    });
  });
});
