import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { type RunningLocalHost, startLocalHost } from "../../shared/local-host/local-host";
import type { NotificationStatus } from "../../shared/notifications/status";
import { registeredFunctions } from "../../shared/registry";
import { TableFactory } from "../../shared/store/table-factory";
import { WelcomeLedger } from "../../shared/store/welcome-ledger";
import { startGraphSimulator } from "../graph-simulator";
import type { GraphSimulator } from "../graph-simulator/simulator";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { testConfig } from "../support/test-config";

const TEAMS_APP_ID = "0f4e8d2a-6c1b-4a9e-8f3d-7b5c2e1a9d60";

/** A port free right now (the host must be told it before the Graph stand-in starts). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/**
 * `npm start` with `ProactiveInstall=true` and `GraphEndpoint` on a loopback Graph stand-in
 * (what `npm run graph-sim` runs): the real function modules behind the local host, the local
 * queues, and a user whom Herald has never seen, who receives the notification.
 */
describe("the local host with proactive install against a loopback Graph", () => {
  const saved = { ...process.env };
  let host: RunningLocalHost;
  let teams: TeamsSimulator;
  let graph: GraphSimulator;
  let queueDirectory: string;
  const config = testConfig();

  beforeAll(async () => {
    queueDirectory = mkdtempSync(join(tmpdir(), "herald-queue-"));
    const port = await freePort();
    teams = await startTeamsSimulator();
    graph = await startGraphSimulator({
      teams,
      botEndpoint: `http://127.0.0.1:${port}/api/messages`,
      enforceRateLimits: true,
    });
    graph.publishApp({ externalId: TEAMS_APP_ID });
    const settings: Record<string, string> = {
      TableStorageConnection: process.env.HERALD_TEST_TABLES_CONNECTION!,
      TableNamePrefix: config.tableNamePrefix,
      LocalQueueDirectory: queueDirectory,
      NotificationsQueueName: "notifications",
      WorkQueueName: "herald-work",
      ProactiveInstall: "true",
      TeamsAppId: TEAMS_APP_ID,
      GraphEndpoint: graph.endpoint,
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
      port,
      queueDirectory,
      queueOptions: { pollIntervalMs: 20 },
      logHandlerFor: () => () => {},
    });
  });

  afterAll(async () => {
    await graph.close();
    await host.close();
    await teams.close();
    rmSync(queueDirectory, { recursive: true, force: true });
    process.env = saved;
  });

  it("delivers to a user who never installed the bot, installing the app once, with no welcome", async () => {
    const person = graph.addUser({ displayName: "Adele Vance" });
    const id = `local-install-${Date.now()}`;
    const posted = await fetch(`${host.http.origin}/api/notifications`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        schemaVersion: 1,
        id,
        tenantId: teams.tenantId,
        recipients: [{ userPrincipalName: person.userPrincipalName }],
        message: { text: "Hello from the local host" },
      }),
    });
    expect(posted.status).toBe(202);

    await teams.waitFor(
      () => {
        const user = graph.user(person.id)?.teamsUser;
        return user !== undefined && teams.messagesToUser(user).length > 0;
      },
      { timeoutMs: 20_000, description: "the notification in the new user's 1:1 chat" },
    );
    let status: NotificationStatus | undefined;
    for (let i = 0; i < 400 && status?.state !== "completed"; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 25));
      status = (await (
        await fetch(`${host.http.origin}/api/notifications/${id}`)
      ).json()) as NotificationStatus;
    }
    expect(status).toMatchObject({ id, state: "completed", counts: { total: 1, sent: 1 } });
    await graph.settled();
    // The install's events reached the bot, and its welcome work ran (skipped: Herald installed).
    const teamsUser = graph.user(person.id)!.teamsUser!;
    expect(
      graph.postedActivities.filter((a) => a.userId === person.id).map((a) => a.status),
    ).toEqual([200, 200]);
    const welcomes = new WelcomeLedger(new TableFactory(config), { leaseMs: 60_000 });
    const subject = {
      scope: "personal" as const,
      tenantId: teams.tenantId,
      teamsUserId: teamsUser.id,
    };
    let welcome = await welcomes.get(subject);
    for (let i = 0; i < 400 && welcome === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      welcome = await welcomes.get(subject);
    }
    expect(welcome?.state).toBe("skipped");
    expect(teams.messagesToUser(teamsUser).map((m) => m.text)).toEqual([
      "Hello from the local host",
    ]);
    expect(graph.countRoute("installApp", 201)).toBe(1);
  }, 60_000);
});
