import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { CloudEvent } from "../../shared/model/cloud-event";
import { LocalQueue } from "../../shared/queue/local-queue";
import { LocalTopic } from "../../shared/queue/local-topic";
import { buildHostBundle, HostProcess } from "../chaos/support/host-process";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";

/**
 * `npm start` (the same host, as a child process) SIGKILLed in the window between a
 * transition's write and its publish: the host's own test seam kills it right after the
 * delivery's `sent` row is written, before its events reach the local topic.
 */
describe("an event whose publish a SIGKILL of npm start interrupted", () => {
  let folder = "";
  let sim: TeamsSimulator;
  let host: HostProcess | undefined;

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), "herald-events-crash-"));
    sim = await startTeamsSimulator();
  });
  afterAll(async () => {
    await host?.crash();
    await sim.close();
    rmSync(folder, { recursive: true, force: true });
  });

  function received(topic: LocalTopic): CloudEvent[] {
    const subscription = topic.subscription("lob-app");
    const messages = subscription.receive(100);
    for (const message of messages) subscription.complete(message);
    return messages.map((m) => m.body as CloudEvent);
  }

  it("arrives once after the restart, with the id it was recorded with", async () => {
    const connection = process.env.HERALD_TEST_TABLES_CONNECTION;
    if (connection === undefined) throw new Error("Azurite is not running");
    const marker = join(folder, "killed.json");
    host = new HostProcess({
      script: buildHostBundle(folder),
      settings: {
        TableStorageConnection: connection,
        TableNamePrefix: `e${randomBytes(5).toString("hex")}`,
        HERALD_TEST_KILL_BEFORE_PUBLISH: "herald.delivery.sent",
        HERALD_TEST_KILL_MARKER: marker,
      },
      lockDurationMs: 1_000,
    });
    await host.start();
    const directory = join(folder, ".data", "queue");
    const topic = new LocalTopic({ directory });
    topic.subscribe("lob-app", `tenantId = '${sim.tenantId.toLowerCase()}'`);
    const user = sim.addUser();
    const installed = await sim.send(sim.activities.personalInstall(user), {
      endpoint: `${host.origin}/api/messages`,
    });
    expect(installed.status).toBe(200);

    const id = `req-${randomUUID()}`;
    await new LocalQueue({ directory }).enqueue([
      {
        body: {
          schemaVersion: 1,
          id,
          tenantId: sim.tenantId,
          recipients: [{ aadObjectId: user.aadObjectId }],
          message: { text: "Your order **42** shipped" },
        },
        messageId: id,
      },
    ]);

    // The host kills itself once the delivery's `sent` is written, before it is published.
    expect(await host.exitCode()).toBeNull();
    expect(existsSync(marker)).toBe(true);
    const killedAt = JSON.parse(readFileSync(marker, "utf8")) as { id: string; type: string }[];
    expect(killedAt.map((e) => e.type)).toEqual([
      "herald.delivery.sent",
      "herald.notification.completed",
    ]);
    const beforeRestart = received(topic);
    expect(beforeRestart.map((e) => e.type)).toEqual(["herald.notification.accepted"]);

    await host.start();
    const after: CloudEvent[] = [];
    const deadline = Date.now() + 60_000;
    while (after.length < 2 && Date.now() < deadline) {
      after.push(...received(topic));
      await new Promise((done) => setTimeout(done, 100));
    }
    // A little longer: a second copy, if any were published, would come now.
    await new Promise((done) => setTimeout(done, 1_000));
    after.push(...received(topic));

    expect(after.map((e) => ({ id: e.id, type: e.type }))).toEqual(killedAt);
    // One copy in Teams: the redelivery found the row sent and only published its events.
    const notifications = sim
      .messagesToUser(user)
      .filter((a) => a.text?.includes("order") === true);
    expect(notifications).toHaveLength(1);
    topic.close();
  }, 120_000);
});
