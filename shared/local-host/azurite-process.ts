import { type ChildProcess, fork } from "node:child_process";
import { join } from "node:path";

import type { RunningAzurite } from "./azurite";

/**
 * Azurite's Table service in a child process that `npm start` owns.
 *
 * Azurite keeps its tables in memory (LokiJS) and writes them to disk every few seconds and when
 * it closes. In the `npm start` process itself, a SIGKILL (or a crash) of that process would lose
 * the writes Azurite had already confirmed since its last save. In a child of its own, Azurite
 * outlives its parent: when the parent goes, for any reason, the IPC channel closes, and the
 * child closes Azurite (which saves) and exits. The parent only has to wait for it on a clean
 * stop.
 */

/** What the parent asks for (the child's argv[2], JSON). */
export interface AzuriteProcessRequest {
  readonly port: number;
  /** On EADDRINUSE, take a free port instead of answering `port-in-use`. */
  readonly fallbackToFreePort: boolean;
  /** Keep the tables here (locked with `herald.pid`); in memory when absent or in use. */
  readonly dataDir?: string;
  readonly autosaveIntervalMs: number;
  /** How long to wait for the Azurite of a killed `npm start` to save and let go of `dataDir`. */
  readonly orphanWaitMs: number;
}

/** What the child answers, once. */
export type AzuriteProcessReport =
  | {
      readonly kind: "ready";
      readonly tableEndpoint: string;
      readonly connectionString: string;
      /** Where the tables are kept; undefined: in memory. */
      readonly dataDir: string | undefined;
      /** The live process holding the requested `dataDir` (so the tables are in memory). */
      readonly dataDirHeldBy?: number;
      /** Azurite of a killed `npm start`, waited for while it saved. */
      readonly waitedFor?: { readonly pid: number; readonly ms: number };
      /** Set when the requested port was taken and a free one was used. */
      readonly portTaken?: number;
    }
  | { readonly kind: "port-in-use"; readonly port: number }
  | { readonly kind: "failed"; readonly message: string; readonly code?: string };

export interface AzuriteProcessOptions {
  /** 0 takes a free port. */
  readonly port: number;
  readonly fallbackToFreePort: boolean;
  readonly dataDir?: string;
  /** LokiJS autosave while running (1 s by default; Azurite's own is 5 s). */
  readonly autosaveIntervalMs?: number;
  readonly orphanWaitMs?: number;
  /** The child's script; `azurite-process-entry.js` beside this module by default. */
  readonly entry?: string;
  /** Called when the child exits without being asked to (its tables are gone). */
  readonly onUnexpectedExit?: (description: string) => void;
}

export interface AzuriteProcess extends RunningAzurite {
  readonly pid: number;
  readonly dataDir: string | undefined;
  readonly dataDirHeldBy: number | undefined;
  readonly waitedFor: { readonly pid: number; readonly ms: number } | undefined;
  readonly portTaken: number | undefined;
}

export const AZURITE_ENTRY = join(__dirname, "azurite-process-entry.js");

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

function describe(pid: number | undefined, { code, signal }: Exit): string {
  const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? "?"}`;
  return `Azurite's process (pid ${pid ?? "?"}) ${how}`;
}

/**
 * Forks the Azurite child and resolves once it listens. Rejects with an `EADDRINUSE` error
 * when `port` is taken and `fallbackToFreePort` is false (the child is gone by then).
 */
export function startAzuriteProcess(options: AzuriteProcessOptions): Promise<AzuriteProcess> {
  const request: AzuriteProcessRequest = {
    port: options.port,
    fallbackToFreePort: options.fallbackToFreePort,
    ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
    autosaveIntervalMs: options.autosaveIntervalMs ?? 1_000,
    orphanWaitMs: options.orphanWaitMs ?? 30_000,
  };
  const child = fork(options.entry ?? AZURITE_ENTRY, [JSON.stringify(request)], {
    // Its own process group: Ctrl+C in the terminal reaches only the parent, which lets its
    // in-flight messages finish writing to the tables before it stops the child. (On Windows
    // that would open a console window; there the child ignores Ctrl+C instead.)
    detached: process.platform !== "win32",
    // Not the parent's flags (an inspector port, a test runner's loader).
    execArgv: [],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<Exit>((done) => {
    child.once("exit", (code, signal) => done({ code, signal }));
  });

  return new Promise<AzuriteProcess>((resolve, reject) => {
    let answer: AzuriteProcessReport | undefined;
    child.once("error", (error) => {
      if (answer === undefined) reject(error);
    });
    child.once("message", (message: AzuriteProcessReport) => {
      answer = message;
      if (message.kind === "ready")
        resolve(running(child, message, exited, options.onUnexpectedExit));
    });
    // Anything but "ready" is followed by the child's exit: reject then, so that nothing
    // outlives the rejection.
    void exited.then((exit) => {
      if (answer === undefined) {
        reject(new Error(`${describe(child.pid, exit)} before it was ready`));
      } else if (answer.kind !== "ready") {
        const error: NodeJS.ErrnoException =
          answer.kind === "port-in-use"
            ? new Error(`listen EADDRINUSE: address already in use 127.0.0.1:${answer.port}`)
            : new Error(`Azurite did not start: ${answer.message}`);
        error.code = answer.kind === "port-in-use" ? "EADDRINUSE" : answer.code;
        reject(error);
      }
    });
  });
}

function running(
  child: ChildProcess,
  ready: AzuriteProcessReport & { kind: "ready" },
  exited: Promise<Exit>,
  onUnexpectedExit: ((description: string) => void) | undefined,
): AzuriteProcess {
  let closing: Promise<void> | undefined;
  let gone = false;
  void exited.then((exit) => {
    gone = true;
    if (closing === undefined) onUnexpectedExit?.(describe(child.pid, exit));
  });
  return {
    pid: child.pid!,
    tableEndpoint: ready.tableEndpoint,
    connectionString: ready.connectionString,
    dataDir: ready.dataDir,
    dataDirHeldBy: ready.dataDirHeldBy,
    waitedFor: ready.waitedFor,
    portTaken: ready.portTaken,
    close: () =>
      (closing ??= (async () => {
        if (gone) return; // already reported through onUnexpectedExit
        // Closing the channel is the signal to stop: the same one the child gets when this
        // process dies. It saves the tables, lets go of the data folder and exits.
        if (child.connected) child.disconnect();
        const exit = await exited;
        if (exit.code !== 0) throw new Error(`${describe(child.pid, exit)} while stopping`);
      })()),
  };
}
