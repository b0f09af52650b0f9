import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { Config } from "../../shared/config";
import { type RunningLocalHost, startLocalHost } from "../../shared/local-host/local-host";
import type { Recipient } from "../../shared/notifications/schema";
import type { NotificationStatus } from "../../shared/notifications/status";
import { isOutsideHostNotice, registeredFunctions } from "../../shared/registry";
import { testConfig } from "./test-config";

export interface FunctionsLocalHost {
  readonly host: RunningLocalHost;
  /** The settings' config (its table prefix, for reading what Herald wrote). */
  readonly config: Config;
  /**
   * What the process-wide services printed with console.warn (start-up notices such as "BOT
   * AUTHENTICATION IS OFF"), captured until `close` instead of cluttering the test output.
   */
  readonly startupWarnings: readonly string[];
  /** `POST /api/notifications` of a text notification to one recipient; the HTTP status. */
  notify(tenantId: string, id: string, recipient: Recipient, text: string): Promise<number>;
  /** `GET /api/notifications/{id}` until the request is completed (or ~10 s have passed). */
  completedStatus(id: string): Promise<NotificationStatus | undefined>;
  close(): Promise<void>;
}

/**
 * What `npm start` runs: the real function modules (their own composition roots, reading
 * settings from the environment) behind the local host, on Azurite and fresh local queues.
 * Call once per test file: the modules register with the process once.
 */
export async function startFunctionsLocalHost(
  extraSettings: Record<string, string> = {},
): Promise<FunctionsLocalHost> {
  const saved = { ...process.env };
  const startupWarnings: string[] = [];
  const warn = jest.spyOn(console, "warn").mockImplementation((...args: unknown[]) => {
    if (!isOutsideHostNotice(args[0])) startupWarnings.push(args.map(String).join(" "));
  });
  const config = testConfig();
  const queueDirectory = mkdtempSync(join(tmpdir(), "herald-queue-"));
  const settings: Record<string, string> = {
    TableStorageConnection: process.env.HERALD_TEST_TABLES_CONNECTION!,
    TableNamePrefix: config.tableNamePrefix,
    LocalQueueDirectory: queueDirectory,
    NotificationsQueueName: "notifications",
    WorkQueueName: "herald-work",
    ...extraSettings,
  };
  Object.assign(process.env, settings);
  /* eslint-disable @typescript-eslint/no-require-imports -- loaded as the host loads function files */
  require("../../functions/messages");
  require("../../functions/notifications");
  require("../../functions/notifications-api");
  require("../../functions/work");
  /* eslint-enable @typescript-eslint/no-require-imports */
  const host = await startLocalHost({
    registrations: registeredFunctions(),
    settings,
    port: 0,
    queueDirectory,
    queueOptions: { pollIntervalMs: 20 },
    logHandlerFor: () => () => {},
  });
  return {
    host,
    config,
    startupWarnings,
    async notify(tenantId, id, recipient, text) {
      const posted = await fetch(`${host.http.origin}/api/notifications`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          schemaVersion: 1,
          id,
          tenantId,
          recipients: [recipient],
          message: { text },
        }),
      });
      return posted.status;
    },
    async completedStatus(id) {
      // The request is recorded completed just after the send: poll until the status says so.
      let status: NotificationStatus | undefined;
      for (let i = 0; i < 400 && status?.state !== "completed"; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 25));
        status = (await (
          await fetch(`${host.http.origin}/api/notifications/${id}`)
        ).json()) as NotificationStatus;
      }
      return status;
    },
    async close() {
      await host.close();
      rmSync(queueDirectory, { recursive: true, force: true });
      process.env = saved;
      warn.mockRestore();
    },
  };
}
