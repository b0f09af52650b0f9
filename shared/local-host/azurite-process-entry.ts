/**
 * The Azurite child process of `npm start` (forked by `startAzuriteProcess`, see
 * azurite-process.ts). It claims the data folder, starts Azurite's Table service, reports once
 * over IPC, and then waits. It stops, saving the tables, when the IPC channel closes (the parent
 * stopped it, or died: even a SIGKILL closes the channel) or on SIGTERM / SIGINT sent to it.
 */
import Module from "node:module";
import { dirname } from "node:path";

import { type RunningAzurite, startAzuriteTables } from "./azurite";
import type { AzuriteProcessReport, AzuriteProcessRequest } from "./azurite-process";
import { claimFolder, type FolderLock } from "./folder-lock";

const aborted = new AbortController();
let azurite: RunningAzurite | undefined;
let lock: FolderLock | undefined;
let stopping: Promise<void> | undefined;

function report(message: AzuriteProcessReport): void {
  if (process.connected) process.send!(message);
}

function parseRequest(raw: string | undefined): AzuriteProcessRequest {
  const value = JSON.parse(raw ?? "null") as Partial<AzuriteProcessRequest> | null;
  if (
    value === null ||
    typeof value.port !== "number" ||
    typeof value.fallbackToFreePort !== "boolean" ||
    typeof value.autosaveIntervalMs !== "number" ||
    typeof value.orphanWaitMs !== "number" ||
    (value.dataDir !== undefined && typeof value.dataDir !== "string")
  ) {
    throw new Error(`not a request from startAzuriteProcess: ${raw}`);
  }
  return value as AzuriteProcessRequest;
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

async function start(request: AzuriteProcessRequest): Promise<void> {
  let dataDir: string | undefined;
  let dataDirHeldBy: number | undefined;
  let waitedFor: { pid: number; ms: number } | undefined;
  if (request.dataDir !== undefined) {
    const claim = await claimFolder(request.dataDir, {
      owner: process.ppid,
      orphanWaitMs: request.orphanWaitMs,
      signal: aborted.signal,
    });
    if (claim.lock !== undefined) {
      lock = claim.lock;
      dataDir = request.dataDir;
      waitedFor = claim.waitedFor;
    } else {
      dataDirHeldBy = claim.holder.pid;
    }
  }
  if (aborted.signal.aborted) return;

  skipTelemetryModule();
  const options = (port: number) => ({
    port,
    autosaveIntervalMs: request.autosaveIntervalMs,
    ...(dataDir !== undefined ? { dataDir } : {}),
  });
  let portTaken: number | undefined;
  try {
    azurite = await startAzuriteTables(options(request.port));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
    if (!request.fallbackToFreePort) {
      report({ kind: "port-in-use", port: request.port });
      return;
    }
    portTaken = request.port;
    azurite = await startAzuriteTables(options(0));
  }
  report({
    kind: "ready",
    tableEndpoint: azurite.tableEndpoint,
    connectionString: azurite.connectionString,
    dataDir,
    ...(dataDirHeldBy !== undefined ? { dataDirHeldBy } : {}),
    ...(waitedFor !== undefined ? { waitedFor } : {}),
    ...(portTaken !== undefined ? { portTaken } : {}),
  });
}

async function startOrReport(): Promise<void> {
  try {
    await start(parseRequest(process.argv[2]));
  } catch (error) {
    const failure = error as NodeJS.ErrnoException;
    report({
      kind: "failed",
      message: failure.message,
      ...(failure.code !== undefined ? { code: failure.code } : {}),
    });
  }
}

/** Close Azurite (LokiJS saves the tables), let go of the folder, exit. */
function stop(starting: Promise<void>): Promise<void> {
  aborted.abort();
  return (stopping ??= (async () => {
    let code = 0;
    try {
      await starting;
      await azurite?.close();
    } catch (error) {
      console.error(`Azurite (pid ${process.pid}) failed to save and close: ${String(error)}`);
      code = 1;
    } finally {
      lock?.release();
    }
    process.exit(code);
  })());
}

function main(): void {
  // The parent's terminal may be gone by the time this writes: never die of EPIPE / EIO.
  process.stdout.on("error", () => undefined);
  process.stderr.on("error", () => undefined);

  const starting = startOrReport();
  process.on("disconnect", () => void stop(starting));
  process.on("SIGTERM", () => void stop(starting));
  process.on("SIGINT", () => {
    // A Windows console sends Ctrl+C to every process in it: the parent stops this one after
    // its in-flight messages are done. Elsewhere a SIGINT here was sent to this process alone.
    if (process.platform === "win32" && process.connected) return;
    void stop(starting);
  });
  void starting.then(() => {
    // Failed, answered "port-in-use", or the parent went away meanwhile: nothing to serve.
    if (azurite === undefined || !process.connected) void stop(starting);
  });
}

main();
