/**
 * The Azurite process of one data folder (`.data/azurite` for `npm start`): Azurite's Table
 * service, which outlives the hosts that use it as Table Storage outlives a Function App. A start
 * spawns it detached (its own session, output to `azurite.log` in the folder) when none serves
 * the folder, and attaches to it otherwise (azurite-client.ts). It holds the folder's lock
 * (folder-lock.ts) and answers on the control port the lock names (azurite-protocol.ts).
 *
 * It stops, saving the tables first, when asked (`npm run azurite:stop`), on SIGTERM / SIGINT /
 * SIGHUP, and by itself `idleMs` after the last host left. Nothing a host does, SIGKILL
 * included, stops, reloads or overwrites it. It exits without saving when the folder stops being
 * its own (deleted, or its lock replaced), so that it never writes over tables another process
 * has loaded.
 */
import Module from "node:module";
import { createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";

import { type PersistentAzurite, startAzuriteTables, type TablesPersistence } from "./azurite";
import {
  type AzuriteStatus,
  DAEMON_EXIT,
  type DaemonArgs,
  daemonArgsSchema,
  describeDuration,
  PROTOCOL,
  readLines,
  requestSchema,
  writeLine,
} from "./azurite-protocol";
import { claimLock, holdsLock, releaseLock } from "./folder-lock";

/** How often the process checks that the folder's lock still names it. */
const LOCK_CHECK_MS = 2_000;

const startedAt = new Date().toISOString();
let args: DaemonArgs;
let state: AzuriteStatus["state"] = "starting";
let azurite: (PersistentAzurite & { persistence: TablesPersistence }) | undefined;
let portTaken: number | undefined;
let control: Server | undefined;
/** Attached hosts: each one's open connection and pid. */
const hosts = new Map<Socket, number>();
/** Attach requests that arrived while Azurite was starting. */
const waiting: { socket: Socket; pid: number }[] = [];
let idle: { timer: NodeJS.Timeout; at: string } | undefined;
let stopping: Promise<void> | undefined;

function log(line: string): void {
  console.log(`${new Date().toISOString()} Azurite process ${process.pid}: ${line}`);
}

function status(): AzuriteStatus {
  const persistence = azurite?.persistence.state();
  return {
    protocol: PROTOCOL,
    pid: process.pid,
    dataDir: args.dataDir,
    state,
    ...(azurite !== undefined ? { tableEndpoint: azurite.tableEndpoint } : {}),
    ...(portTaken !== undefined ? { portTaken } : {}),
    startedAt,
    hosts: [...hosts.values()],
    idleExitAt: idle?.at ?? null,
    idleMs: args.idleMs,
    persistence: {
      file: azurite?.persistence.file ?? "",
      autosaveIntervalMs: args.autosaveIntervalMs,
      saves: persistence?.saves ?? 0,
      ...(persistence?.lastSaveAt !== undefined ? { lastSaveAt: persistence.lastSaveAt } : {}),
      unsavedChanges: persistence?.unsavedChanges ?? false,
      saveInFlight: persistence?.saveInFlight ?? false,
    },
  };
}

function armIdleExit(): void {
  if (idle !== undefined || hosts.size > 0 || args.idleMs === 0 || state === "stopping") return;
  const timer = setTimeout(
    () => void stop(`no npm start attached for ${describeDuration(args.idleMs)}`),
    args.idleMs,
  );
  idle = { timer, at: new Date(Date.now() + args.idleMs).toISOString() };
}

function disarmIdleExit(): void {
  if (idle !== undefined) clearTimeout(idle.timer);
  idle = undefined;
}

function attach(socket: Socket, pid: number): void {
  hosts.set(socket, pid);
  disarmIdleExit();
  log(`npm start (process ${pid}) attached; ${hosts.size} attached`);
  socket.once("close", () => {
    if (!hosts.delete(socket)) return;
    log(`npm start (process ${pid}) left; ${hosts.size} attached`);
    armIdleExit();
  });
  writeLine(socket, { kind: "attached", status: status() });
}

function onConnection(socket: Socket): void {
  socket.on("error", () => undefined);
  let handled = false;
  readLines(socket, (message) => {
    if (handled) return;
    handled = true;
    const parsed = requestSchema.safeParse(message);
    if (!parsed.success) {
      writeLine(socket, { kind: "failed", message: "not a control request" });
      socket.end();
      return;
    }
    const request = parsed.data;
    if (request.op === "status") {
      writeLine(socket, { kind: "status", status: status() });
      socket.end();
    } else if (request.op === "stop") {
      if (hosts.size > 0 && !request.force) {
        writeLine(socket, { kind: "refused", hosts: [...hosts.values()] });
        socket.end();
        return;
      }
      writeLine(socket, { kind: "stopping", status: status() });
      socket.end();
      void stop("asked to stop (npm run azurite:stop)");
    } else if (state === "stopping") {
      writeLine(socket, { kind: "failed", message: "Azurite is stopping" });
      socket.end();
    } else if (state === "starting") {
      waiting.push({ socket, pid: request.pid });
    } else {
      attach(socket, request.pid);
    }
  });
}

/**
 * Saves, then exits. Azurite's HTTP server closes first, so nothing changes after the last save;
 * `flush` then waits for a save LokiJS may still be writing (its `close()` does not) and saves
 * once more.
 */
function stop(reason: string, code = 0): Promise<void> {
  return (stopping ??= (async () => {
    state = "stopping";
    disarmIdleExit();
    log(`stopping: ${reason}`);
    control?.close();
    for (const { socket } of waiting.splice(0)) {
      writeLine(socket, { kind: "failed", message: `Azurite stopped: ${reason}` });
      socket.end();
    }
    // The hosts learn why before their connection closes (they stop: their tables are gone).
    for (const socket of hosts.keys()) {
      writeLine(socket, { kind: "failed", message: `Azurite stopped: ${reason}` });
      socket.end();
    }
    let exitCode = code;
    try {
      if (azurite !== undefined) {
        await azurite.close();
        await azurite.persistence.flush();
        const saved = azurite.persistence.state();
        log(`tables saved (${saved.saves} saves since it was ready)`);
      }
    } catch (error) {
      log(`saving the tables failed: ${String(error)}`);
      exitCode = 1;
    }
    releaseLock(args.dataDir, process.pid);
    log("stopped");
    process.exit(exitCode);
  })());
}

/** The folder is no longer this process's: exit at once, writing nothing. */
function lockLost(): void {
  log(
    `${args.dataDir} is no longer this process's (deleted or taken over): exiting without saving`,
  );
  process.exit(DAEMON_EXIT.lockLost);
}

/**
 * Azurite's request pipeline loads `applicationinsights` for telemetry that only its CLI turns
 * on (`AzuriteTelemetryClient.init`, never called here): about half of Azurite's start-up time.
 * Nothing else runs in this process, so an empty module stands in for it. If the module is not
 * where this expects it, it is loaded as usual.
 */
function skipTelemetryModule(): void {
  try {
    const telemetry = require.resolve("azurite/dist/src/common/Telemetry");
    const path = require.resolve("applicationinsights", { paths: [dirname(telemetry)] });
    const stub = new Module(path);
    stub.filename = path;
    stub.loaded = true;
    require.cache[path] = stub;
  } catch {
    // Load it normally.
  }
}

async function startTables(): Promise<PersistentAzurite | undefined> {
  const options = (port: number) => ({
    port,
    dataDir: args.dataDir,
    autosaveIntervalMs: args.autosaveIntervalMs,
  });
  try {
    return await startAzuriteTables(options(args.port));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
    if (!args.fallbackToFreePort) return undefined;
    portTaken = args.port;
    return startAzuriteTables(options(0));
  }
}

async function main(): Promise<void> {
  // Its log file may be gone (the folder deleted): never die of a write error.
  process.stdout.on("error", () => undefined);
  process.stderr.on("error", () => undefined);
  const parsed = daemonArgsSchema.safeParse(JSON.parse(process.argv[2] ?? "null"));
  if (!parsed.success) {
    log(`not started: bad arguments (${parsed.error.message})`);
    process.exit(1);
  }
  args = parsed.data;

  const server = createServer(onConnection);
  await new Promise<void>((listening, failed) => {
    server.once("error", failed);
    server.listen(0, "127.0.0.1", listening);
  });
  control = server;
  const controlPort = (server.address() as { port: number }).port;
  const claim = claimLock(args.dataDir, {
    pid: process.pid,
    controlPort,
    protocol: PROTOCOL,
    startedAt,
  });
  if (claim.kind === "held") {
    const pid = claim.by.kind === "lock" ? claim.by.lock.pid : claim.by.pid;
    log(`${args.dataDir} is held by process ${pid}: not started`);
    process.exit(DAEMON_EXIT.folderHeld);
  }
  setInterval(() => {
    if (!holdsLock(args.dataDir, process.pid)) lockLost();
  }, LOCK_CHECK_MS);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(signal, () => void stop(signal));
  }
  process.on("uncaughtException", (error) => void stop(`crashed: ${error.stack ?? ""}`, 1));
  process.on("unhandledRejection", (error) => void stop(`crashed: ${String(error)}`, 1));
  armIdleExit();

  skipTelemetryModule();
  const started = await startTables();
  if (started === undefined) {
    log(`port ${args.port} is in use: not started`);
    releaseLock(args.dataDir, process.pid);
    process.exit(DAEMON_EXIT.portInUse);
  }
  const persistence = started.persistence;
  if (persistence === undefined) {
    await started.close();
    throw new Error(
      "this Azurite keeps its tables where Herald does not look (not metadataStore.db): Herald cannot make sure they are saved",
    );
  }
  azurite = { ...started, persistence };
  persistence.guardSaves(() => holdsLock(args.dataDir, process.pid), lockLost);
  state = "ready";
  log(
    `ready: Table service ${started.tableEndpoint}, tables in ${persistence.file}` +
      (portTaken !== undefined ? ` (port ${portTaken} was in use)` : "") +
      (args.idleMs > 0
        ? `; stops ${describeDuration(args.idleMs)} after the last npm start leaves`
        : ""),
  );
  for (const { socket, pid } of waiting.splice(0)) {
    if (!socket.destroyed) attach(socket, pid);
  }
}

main().catch((error: unknown) => {
  log(`failed: ${(error as Error).stack ?? String(error)}`);
  void stop("start-up failed", 1);
});
