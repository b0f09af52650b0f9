import { type ChildProcess, spawn } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
} from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";

import { LocalTablesError } from "../errors";
import { AZURITE_ACCOUNT, AZURITE_KEY, type RunningAzurite } from "./azurite";
import {
  answerSchema,
  type AzuriteStatus,
  type ControlAnswer,
  type ControlRequest,
  DAEMON_EXIT,
  type DaemonArgs,
  PROTOCOL,
  readLines,
  writeLine,
} from "./azurite-protocol";
import { isAlive, LOCK_FILE, mayHoldLock, readLock } from "./folder-lock";

/** The Azurite process's output, in its data folder. */
export const AZURITE_LOG = "azurite.log";
/** The daemon's script beside this module (`build/local/` for npm start, `dist/` after tsc). */
export const AZURITE_DAEMON = join(__dirname, "azurite-daemon.js");
/** By default the folder's Azurite stops by itself this long after the last host left. */
export const DEFAULT_IDLE_MS = 10 * 60_000;

export interface AttachOptions {
  readonly dataDir: string;
  /** Where to start a new Azurite; 0 takes a free port. A running one keeps its port. */
  readonly port: number;
  readonly fallbackToFreePort: boolean;
  /** A new Azurite stops by itself this long after the last host left; 0: only when asked. */
  readonly idleMs: number;
  readonly daemonScript?: string;
  /** LokiJS autosave while running (1 s; Azurite's own is 5 s). */
  readonly autosaveIntervalMs?: number;
  /** How long to wait for the folder's Azurite to be ready (it may be loading a large file). */
  readonly readyTimeoutMs?: number;
  /** The attached Azurite went away while this host runs (asked to stop, or killed). */
  readonly onLost?: (description: string) => void;
}

export interface AttachedAzurite extends RunningAzurite {
  readonly pid: number;
  /** Whether this start spawned it, or found it running. */
  readonly how: "started" | "reused";
  /** What it said when this host attached (hosts attached before, persistence, port taken). */
  readonly status: AzuriteStatus;
  readonly logFile: string;
  /** Detaches: Azurite keeps running (and stops by itself once no host is attached). */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

export function connectionStringFor(tableEndpoint: string): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
    `TableEndpoint=${tableEndpoint};`
  );
}

/**
 * The Azurite of `dataDir`, attached: the one the folder's lock names if it runs, else a new one
 * (spawned detached, so that nothing that happens to this process reaches it). Rejects with a
 * `LocalTablesError` when neither works (never falls back to tables in memory), with an
 * `EADDRINUSE` error when `port` is taken and `fallbackToFreePort` is false.
 */
export async function attachAzurite(options: AttachOptions): Promise<AttachedAzurite> {
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  const spawnedPids = new Set<number>();
  let spawned: Spawned | undefined;
  let spawns = 0;
  for (;;) {
    const exit = spawned?.exit;
    if (exit !== undefined) {
      if (exit.code === DAEMON_EXIT.portInUse) {
        const error: NodeJS.ErrnoException = new Error(
          `listen EADDRINUSE: address already in use 127.0.0.1:${options.port}`,
        );
        error.code = "EADDRINUSE";
        throw error;
      }
      if (exit.code !== DAEMON_EXIT.folderHeld) {
        throw new LocalTablesError(
          `Azurite's process for ${options.dataDir} exited (${describeExit(exit)}) before it was ready:\n${logTail(options.dataDir)}`,
        );
      }
      // Another start's Azurite won the folder: attach to that one (or start again if it died).
      spawned = undefined;
    }
    const found = readLock(options.dataDir);
    if (found.kind === "lock" && mayHoldLock(found.lock.pid, "lock")) {
      const { lock } = found;
      if (lock.protocol !== PROTOCOL) {
        throw new LocalTablesError(
          `${options.dataDir} is served by an Azurite process (${lock.pid}) of another version of Herald: stop it with npm run azurite:stop, then start again`,
        );
      }
      const attached = await attachTo(lock.controlPort, deadline);
      if (attached !== undefined) {
        if (attached.status.pid !== lock.pid || !sameFolder(attached.status.dataDir, options)) {
          attached.socket.destroy();
          throw new LocalTablesError(
            `the process on ${options.dataDir}'s control port (${lock.controlPort}) is not the Azurite its ${LOCK_FILE} names (process ${lock.pid})`,
          );
        }
        return attachedAzurite(attached, spawnedPids.has(lock.pid), options);
      }
      // It is stopping (or just died): a new one can start once it has let go of the folder.
    } else if (found.kind === "legacy" && mayHoldLock(found.pid, "legacy")) {
      throw new LocalTablesError(
        `${options.dataDir} is held by process ${found.pid}, the Azurite of an npm start from an earlier version of Herald: stop that npm start, then start again`,
      );
    } else if (spawned === undefined) {
      if (spawns === 3) break;
      spawns += 1;
      spawned = spawnDaemon(options);
      if (spawned.child.pid !== undefined) spawnedPids.add(spawned.child.pid);
    }
    if (Date.now() > deadline) break;
    await sleep(25);
  }
  const holder = readLock(options.dataDir);
  throw new LocalTablesError(
    holder.kind === "lock" && mayHoldLock(holder.lock.pid, "lock")
      ? `${options.dataDir} is held by process ${holder.lock.pid} (its ${LOCK_FILE}), which did not answer as its Azurite on port ${holder.lock.controlPort}: if that process is not Azurite, delete ${join(options.dataDir, LOCK_FILE)}`
      : `Azurite for ${options.dataDir} was not ready in time (see ${join(options.dataDir, AZURITE_LOG)}):\n${logTail(options.dataDir)}`,
  );
}

interface Spawned {
  readonly child: ChildProcess;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
}

function spawnDaemon(options: AttachOptions): Spawned {
  mkdirSync(options.dataDir, { recursive: true });
  const logFile = join(options.dataDir, AZURITE_LOG);
  rotateLog(logFile);
  const args: DaemonArgs = {
    dataDir: options.dataDir,
    port: options.port,
    fallbackToFreePort: options.fallbackToFreePort,
    idleMs: options.idleMs,
    autosaveIntervalMs: options.autosaveIntervalMs ?? 1_000,
  };
  const out = openSync(logFile, "a");
  try {
    // Detached (a session of its own) with its output in a file: no signal to this process's
    // group, no closed terminal or pipe reaches it.
    const child = spawn(
      process.execPath,
      [options.daemonScript ?? AZURITE_DAEMON, JSON.stringify(args)],
      { cwd: options.dataDir, detached: true, stdio: ["ignore", out, out], windowsHide: true },
    );
    const spawned: Spawned = { child, exit: undefined };
    child.once("exit", (code, signal) => (spawned.exit = { code, signal }));
    child.once("error", () => (spawned.exit = { code: null, signal: null }));
    child.unref();
    return spawned;
  } finally {
    closeSync(out);
  }
}

function rotateLog(path: string): void {
  try {
    if (statSync(path).size > 1024 * 1024) renameSync(path, `${path}.1`);
  } catch {
    // No log yet.
  }
}

function describeExit(exit: NonNullable<Spawned["exit"]>): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `code ${exit.code ?? "?"}`;
}

function logTail(dataDir: string): string {
  try {
    const lines = readFileSync(join(dataDir, AZURITE_LOG), "utf8").trimEnd().split("\n");
    return lines
      .slice(-8)
      .map((line) => `  ${line}`)
      .join("\n");
  } catch {
    return "  (no log)";
  }
}

function sameFolder(reported: string, options: AttachOptions): boolean {
  try {
    return realpathSync(reported) === realpathSync(options.dataDir);
  } catch {
    return false;
  }
}

interface Attachment {
  readonly socket: Socket;
  readonly status: AzuriteStatus;
  /** Why Azurite said it stopped, once it has. */
  readonly stopped: { because: string | undefined };
}

/** Attaches over the control port; undefined when it refuses or goes away (it is stopping). */
async function attachTo(port: number, deadline: number): Promise<Attachment | undefined> {
  const stopped: { because: string | undefined } = { because: undefined };
  const { socket, answer } = await send(
    port,
    { op: "attach", pid: process.pid },
    Math.max(0, deadline - Date.now()),
    (later) => {
      if (later.kind === "failed") stopped.because = later.message;
    },
  );
  if (answer?.kind !== "attached") {
    socket.destroy();
    return undefined;
  }
  return { socket, status: answer.status, stopped };
}

/**
 * Sends one request on a fresh connection to the control port. Resolves with the first answer,
 * or undefined when none comes in `timeoutMs` or the connection closes first; later lines (only
 * an attached host gets any) go to `onLater`.
 */
function send(
  port: number,
  request: ControlRequest,
  timeoutMs: number,
  onLater?: (answer: ControlAnswer) => void,
): Promise<{ socket: Socket; answer: ControlAnswer | undefined }> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let answered = false;
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on("error", () => undefined);
    socket.once("connect", () => writeLine(socket, request));
    readLines(socket, (message) => {
      const parsed = answerSchema.safeParse(message);
      if (answered) {
        if (parsed.success) onLater?.(parsed.data);
        return;
      }
      answered = true;
      clearTimeout(timer);
      resolve({ socket, answer: parsed.success ? parsed.data : undefined });
    });
    socket.once("close", () => {
      clearTimeout(timer);
      if (!answered) resolve({ socket, answer: undefined });
    });
  });
}

function attachedAzurite(
  attachment: Attachment,
  startedHere: boolean,
  options: AttachOptions,
): AttachedAzurite {
  const { socket, status } = attachment;
  const tableEndpoint = status.tableEndpoint ?? "";
  let detaching = false;
  const closed = new Promise<void>((done) => socket.once("close", () => done()));
  void closed.then(() => {
    if (detaching) return;
    options.onLost?.(
      `Azurite's process (${status.pid}) ${attachment.stopped.because ?? "went away (killed?)"}`,
    );
  });
  return {
    pid: status.pid,
    how: startedHere ? "started" : "reused",
    status,
    logFile: join(options.dataDir, AZURITE_LOG),
    tableEndpoint,
    connectionString: connectionStringFor(tableEndpoint),
    close: async () => {
      detaching = true;
      socket.end();
      await closed;
    },
  };
}

/** One request on a fresh connection, closed after the answer. */
async function ask(
  port: number,
  request: ControlRequest,
  timeoutMs: number,
): Promise<ControlAnswer | undefined> {
  const { socket, answer } = await send(port, request, timeoutMs);
  socket.end();
  return answer;
}

export type FolderAzurite =
  | { readonly kind: "none" }
  | { readonly kind: "running"; readonly status: AzuriteStatus }
  /** A live process holds the folder but does not answer as Herald's Azurite. */
  | { readonly kind: "unreachable"; readonly pid: number };

/** What serves `dataDir` now (`npm run azurite:status`, and the crash test's report). */
export async function folderAzurite(dataDir: string, timeoutMs = 5_000): Promise<FolderAzurite> {
  const found = readLock(dataDir);
  if (found.kind === "legacy" && mayHoldLock(found.pid, "legacy")) {
    return { kind: "unreachable", pid: found.pid };
  }
  if (found.kind !== "lock" || !mayHoldLock(found.lock.pid, "lock")) return { kind: "none" };
  const answer = await ask(found.lock.controlPort, { op: "status" }, timeoutMs);
  return answer?.kind === "status"
    ? { kind: "running", status: answer.status }
    : { kind: "unreachable", pid: found.lock.pid };
}

export type StopResult =
  | { readonly kind: "none" }
  | { readonly kind: "stopped"; readonly pid: number }
  | { readonly kind: "refused"; readonly hosts: readonly number[] }
  | { readonly kind: "unreachable"; readonly pid: number };

/**
 * Asks the folder's Azurite to save and stop, and waits until its process is gone. Without
 * `force` it refuses while hosts are attached.
 */
export async function stopAzurite(
  dataDir: string,
  options: { force: boolean; timeoutMs?: number },
): Promise<StopResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const found = readLock(dataDir);
  if (found.kind === "legacy" && mayHoldLock(found.pid, "legacy")) {
    return { kind: "unreachable", pid: found.pid };
  }
  if (found.kind !== "lock" || !mayHoldLock(found.lock.pid, "lock")) return { kind: "none" };
  const { pid, controlPort } = found.lock;
  const answer = await ask(controlPort, { op: "stop", force: options.force }, timeoutMs);
  if (answer?.kind === "refused") return { kind: "refused", hosts: answer.hosts };
  if (answer?.kind !== "stopping") return { kind: "unreachable", pid };
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return { kind: "unreachable", pid };
    await sleep(25);
  }
  return { kind: "stopped", pid };
}
