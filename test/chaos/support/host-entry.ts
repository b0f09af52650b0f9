/**
 * The `npm start` host as the crash test runs it in a child process: the same `runNpmStart`
 * (settings merge, the data folder's Azurite, local durable queue drained into the Service Bus
 * handler, HTTP triggers, signals, stopping when the tables go), with the function modules
 * bundled in, a project root of the test's own (so `.data/` is a temp folder) and a free port.
 * Settings come from the environment, as with `npm start`.
 *
 * Prints `HERALD_TABLES <connection string>`, then `HERALD_READY <origin>` once it listens.
 * Runs until killed (or its tables go); the data folder's Azurite process keeps running either
 * way (the test stops it).
 */
import "../../../functions/messages";
import "../../../functions/notifications";
import "../../../functions/notifications-api";
import "../../../functions/work";

import { existsSync, writeFileSync } from "node:fs";

import { runNpmStart } from "../../../shared/local-host/main";
import { setBeforePublishHookForTests } from "../../../shared/notifications/event-outbox";
import { registeredFunctions } from "../../../shared/registry";

export const READY_PREFIX = "HERALD_READY ";

function numberFrom(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name}: not a number`);
  return value;
}

/**
 * `HERALD_TEST_KILL_BEFORE_PUBLISH=<event type>`: the first time events of that type are about
 * to be published (their transition's write done), the host writes their ids to
 * `HERALD_TEST_KILL_MARKER` and SIGKILLs itself: the window between a write and its publish,
 * hit deterministically. A start that finds the marker publishes normally.
 */
const killType = process.env.HERALD_TEST_KILL_BEFORE_PUBLISH;
const killMarker = process.env.HERALD_TEST_KILL_MARKER;
if (killType !== undefined && killMarker !== undefined && !existsSync(killMarker))
  setBeforePublishHookForTests((events) => {
    if (existsSync(killMarker) || !events.some((e) => e.type === killType)) return;
    writeFileSync(killMarker, JSON.stringify(events.map((e) => ({ id: e.id, type: e.type }))));
    process.kill(process.pid, "SIGKILL");
  });

const projectRoot = process.env.HERALD_CHAOS_ROOT;
if (projectRoot === undefined) throw new Error("HERALD_CHAOS_ROOT is not set");
const lockDurationMs = numberFrom("HERALD_CHAOS_LOCK_MS");
void runNpmStart({
  projectRoot,
  port: 0,
  // The folder's own Azurite (when the settings name none) on a free port, not 10002; it
  // outlives every kill of this host, and stops a minute after the last one (a safety net: the
  // test stops it).
  azuritePort: 0,
  azuriteIdleMs: 60_000,
  loadFunctions: () => registeredFunctions(),
  queueOptions: {
    pollIntervalMs: 50,
    retryDelayMs: 200,
    ...(lockDurationMs !== undefined ? { lockDurationMs } : {}),
  },
  onReady: (running) => {
    console.log(`HERALD_TABLES ${running.settings.TableStorageConnection ?? ""}`);
    console.log(`${READY_PREFIX}${running.host.http.origin}`);
  },
});
