/**
 * The `npm start` host as the crash test runs it in a child process: the same
 * `startDevelopmentHost` (settings merge, Azurite planning, local durable queue drained into
 * the Service Bus handler, HTTP triggers), with the function modules bundled in instead of
 * read from `dist/`, a project root of the test's own (so `.data/` is a temp folder) and a
 * free port. Settings come from the environment, as with `npm start`.
 *
 * Prints `HERALD_TABLES <connection string>`, then `HERALD_READY <origin>` once it listens.
 * Stops only when killed (its Azurite child then saves the tables and exits by itself).
 */
import "../../../functions/messages";
import "../../../functions/notifications";
import "../../../functions/notifications-api";
import "../../../functions/work";

import { startDevelopmentHost } from "../../../shared/local-host/main";
import { registeredFunctions } from "../../../shared/registry";

export const READY_PREFIX = "HERALD_READY ";

function numberFrom(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name}: not a number`);
  return value;
}

async function main(): Promise<void> {
  const projectRoot = process.env.HERALD_CHAOS_ROOT;
  if (projectRoot === undefined) throw new Error("HERALD_CHAOS_ROOT is not set");
  const lockDurationMs = numberFrom("HERALD_CHAOS_LOCK_MS");
  const running = await startDevelopmentHost({
    projectRoot,
    port: 0,
    // Its own Azurite (when the settings name none) on a free port, not 10002.
    azuritePort: 0,
    ...(process.env.HERALD_CHAOS_AZURITE === "this-process"
      ? { azurite: "this-process" as const }
      : {}),
    loadFunctions: () => registeredFunctions(),
    queueOptions: {
      pollIntervalMs: 50,
      retryDelayMs: 200,
      ...(lockDurationMs !== undefined ? { lockDurationMs } : {}),
    },
  });
  console.log(`HERALD_TABLES ${running.settings.TableStorageConnection ?? ""}`);
  console.log(`${READY_PREFIX}${running.host.http.origin}`);
}

main().catch((error: unknown) => {
  console.error(`host failed to start: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
