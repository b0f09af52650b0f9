import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { type RunningLocalHost, startLocalHost } from "../../shared/local-host/local-host";
import type { NotificationStatus } from "../../shared/notifications/status";
import { registeredFunctions } from "../../shared/registry";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { testConfig } from "../support/test-config";

/**
 * The `npm start` path end to end: the real function modules (their own composition roots,
 * reading settings from the environment) behind the local host, the local durable queue
 * drained into the Service Bus handler, and the Teams simulator as Teams.
 */
describe("notifications through the local host", () => {
  const saved = { ...process.env };
  let host: RunningLocalHost;
  let sim: TeamsSimulator;
  let queueDirectory: string;

  beforeAll(async () => {
    const config = testConfig();
    queueDirectory = mkdtempSync(join(tmpdir(), "herald-queue-"));
    const settings: Record<string, string> = {
      TableStorageConnection: process.env.HERALD_TEST_TABLES_CONNECTION!,
      TableNamePrefix: config.tableNamePrefix,
      LocalQueueDirectory: queueDirectory,
      NotificationsQueueName: "notifications",
      WorkQueueName: "herald-work",
    };
    Object.assign(process.env, settings);
    /* eslint-disable @typescript-eslint/no-require-imports -- loaded as the host loads function files */
    require("../../functions/messages");
    require("../../functions/notifications");
    require("../../functions/notifications-api");
    require("../../functions/work");
    /* eslint-enable @typescript-eslint/no-require-imports */
    host = await startLocalHost({
      registrations: registeredFunctions(),
      settings,
      port: 0,
      queueDirectory,
      queueOptions: { pollIntervalMs: 20 },
      logHandlerFor: () => () => {},
    });
    sim = await startTeamsSimulator({ botEndpoint: `${host.http.origin}/api/messages` });
  });

  afterAll(async () => {
    await host.close();
    await sim.close();
    rmSync(queueDirectory, { recursive: true, force: true });
    process.env = saved;
  });

  it("takes a request over HTTP, drains it from the local queue and delivers it to the installed user", async () => {
    const user = sim.addUser();
    expect((await sim.send(sim.activities.personalInstall(user))).status).toBe(200);

    const id = `local-${Date.now()}`;
    const posted = await fetch(`${host.http.origin}/api/notifications`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        schemaVersion: 1,
        id,
        tenantId: sim.tenantId,
        recipients: [{ userPrincipalName: user.userPrincipalName }],
        message: { text: "Hello from the local host" },
      }),
    });
    expect(posted.status).toBe(202);

    await sim.waitFor(
      () => sim.messagesToUser(user).some((a) => a.text === "Hello from the local host"),
      { timeoutMs: 10_000, description: "the notification in the user's 1:1 chat" },
    );
    // The request is recorded dispatched just after the send: poll until the status says so.
    let status: NotificationStatus | undefined;
    for (let i = 0; i < 200 && status?.state !== "completed"; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 25));
      status = (await (
        await fetch(`${host.http.origin}/api/notifications/${id}`)
      ).json()) as NotificationStatus;
    }
    expect(status).toMatchObject({ id, state: "completed", counts: { total: 1, sent: 1 } });
  });
});
