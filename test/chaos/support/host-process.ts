import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

import { buildSync } from "esbuild";

import { folderLockHolder } from "../../../shared/local-host/folder-lock";

const PROJECT_ROOT = resolve(__dirname, "../../..");
const READY_PREFIX = "HERALD_READY ";
const TABLES_PREFIX = "HERALD_TABLES ";

/**
 * Bundles `host-entry.ts` (the `npm start` host with the function modules built in) into
 * `folder`, beside the Azurite child process's entry (as `dist/` has them), and lays out a
 * project root there (host.json) whose `.data/` holds the host's queue and, when it runs its
 * own Azurite, its tables. Returns the bundle's path.
 */
export function buildHostBundle(folder: string): string {
  mkdirSync(folder, { recursive: true });
  const script = join(folder, "herald-host.js");
  buildSync({
    entryPoints: {
      "herald-host": join(__dirname, "host-entry.ts"),
      // main.ts forks `azurite-process-entry.js` from its own folder: the bundle's.
      "azurite-process-entry": join(PROJECT_ROOT, "shared/local-host/azurite-process-entry.ts"),
    },
    bundle: true,
    platform: "node",
    target: "node22",
    packages: "external",
    outdir: folder,
    logLevel: "error",
    // main.ts starts itself when it is the entry module; here host-entry.ts starts it.
    define: { "require.main": "undefined" },
  });
  copyFileSync(join(PROJECT_ROOT, "host.json"), join(folder, "host.json"));
  return script;
}

export interface HostProcessOptions {
  /** The bundle from `buildHostBundle`; its folder is the project root (data in `.data/`). */
  readonly script: string;
  /** App settings, as `npm start` reads them from the environment. */
  readonly settings: Readonly<Record<string, string>>;
  /** How long a crashed consumer's message stays locked (the local queue's lock duration). */
  readonly lockDurationMs: number;
  readonly startTimeoutMs?: number;
  /** Prefix of the log files (`<name>-<n>.log`), for several hosts on one folder; `host`. */
  readonly name?: string;
}

/**
 * The local host as a real child process that the test kills with SIGKILL and starts again on
 * the same data folder. Output goes to `host-<n>.log` beside the bundle (one per start).
 */
export class HostProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private starts = 0;
  /** `http://127.0.0.1:<port>` of the running host (a new port after each start). */
  origin = "";
  /** The Table Storage connection string the running host uses. */
  tablesConnection = "";

  constructor(private readonly options: HostProcessOptions) {}

  get root(): string {
    return resolve(this.options.script, "..");
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  async start(): Promise<string> {
    if (this.child !== undefined) throw new Error("host already running");
    this.starts += 1;
    const logPath = join(this.root, `${this.options.name ?? "host"}-${this.starts}.log`);
    const log = openSync(logPath, "w");
    const child = spawn(process.execPath, [this.options.script], {
      cwd: this.root,
      env: {
        PATH: process.env.PATH,
        NODE_PATH: join(PROJECT_ROOT, "node_modules"),
        HERALD_CHAOS_ROOT: this.root,
        HERALD_CHAOS_LOCK_MS: String(this.options.lockDurationMs),
        ...this.options.settings,
      },
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    this.child = child;
    this.exited = new Promise((done) => child.once("exit", () => done()));
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 20_000);
    for (;;) {
      const text = readFileSync(logPath, "utf8");
      const line = text.split("\n").find((l) => l.startsWith(READY_PREFIX));
      if (line !== undefined) {
        this.origin = line.slice(READY_PREFIX.length).trim();
        const tables = text.split("\n").find((l) => l.startsWith(TABLES_PREFIX));
        this.tablesConnection = tables?.slice(TABLES_PREFIX.length).trim() ?? "";
        return this.origin;
      }
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        this.kill();
        throw new Error(`the host did not start; its output:\n${text.slice(-4000)}`);
      }
      await new Promise((done) => setTimeout(done, 25));
    }
  }

  /** SIGKILL: no handler runs, nothing is flushed, in-flight messages keep their locks. */
  async crash(): Promise<void> {
    this.kill();
    await this.exited;
  }

  /**
   * Waits until no process holds the data folder's tables: after a SIGKILL of the host, its
   * Azurite child saves them and exits on its own.
   */
  async tablesReleased(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (folderLockHolder(join(this.root, ".data", "azurite")) !== undefined) {
      if (Date.now() > deadline) throw new Error("the host's Azurite did not exit");
      await new Promise((done) => setTimeout(done, 25));
    }
  }

  private kill(): void {
    const child = this.child;
    this.child = undefined;
    if (child?.pid !== undefined && child.exitCode === null) child.kill("SIGKILL");
  }

  /** Lines of every start's output that match `pattern` (for the report). */
  logLines(pattern: RegExp): string[] {
    const lines: string[] = [];
    for (let n = 1; n <= this.starts; n++) {
      const text = readFileSync(join(this.root, `${this.options.name ?? "host"}-${n}.log`), "utf8");
      for (const line of text.split("\n")) if (pattern.test(line)) lines.push(line);
    }
    return lines;
  }
}
