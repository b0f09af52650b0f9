import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

import { buildSync } from "esbuild";

import {
  type FolderAzurite,
  folderAzurite,
  stopAzurite,
} from "../../../shared/local-host/azurite-client";
import { AZURITE_FOLDER } from "../../../shared/local-host/settings";
import { TEST_RUN_VARIABLE } from "../../support/leftover-processes";

const PROJECT_ROOT = resolve(__dirname, "../../..");
const READY_PREFIX = "HERALD_READY ";
const TABLES_PREFIX = "HERALD_TABLES ";

/**
 * Bundles `host-entry.ts` (the `npm start` host with the function modules built in) into
 * `folder`, beside the Azurite process's script (as npm start's build has them in build/local),
 * and lays out a project root there (host.json) whose `.data/` holds the host's queue and, when
 * it uses the folder's own Azurite, its tables. Returns the bundle's path.
 */
export function buildHostBundle(folder: string): string {
  mkdirSync(folder, { recursive: true });
  const script = join(folder, "herald-host.js");
  buildSync({
    entryPoints: {
      "herald-host": join(__dirname, "host-entry.ts"),
      // main.ts spawns `azurite-daemon.js` from its own folder: the bundle's.
      "azurite-daemon": join(PROJECT_ROOT, "shared/local-host/azurite-daemon.ts"),
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
  private exited: Promise<number | null> = Promise.resolve(null);
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
        // The test run's marker: the global teardown fails the run if this host (or the
        // Azurite it starts) outlives it.
        ...(process.env[TEST_RUN_VARIABLE] !== undefined
          ? { [TEST_RUN_VARIABLE]: process.env[TEST_RUN_VARIABLE] }
          : {}),
        ...this.options.settings,
      },
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    this.child = child;
    this.exited = new Promise((done) => child.once("exit", (code) => done(code)));
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

  /** Waits for the running host to exit by itself; its exit code. */
  async exitCode(): Promise<number | null> {
    const code = await this.exited;
    this.child = undefined;
    return code;
  }

  /** SIGKILL: no handler runs, nothing is flushed, in-flight messages keep their locks. */
  async crash(): Promise<void> {
    this.kill();
    await this.exited;
  }

  /** What serves the data folder's tables now: the Azurite process, its hosts, what it saved. */
  tables(): Promise<FolderAzurite> {
    return folderAzurite(join(this.root, AZURITE_FOLDER));
  }

  /**
   * Stops the data folder's Azurite (it saves first): it outlives every host, as Table Storage
   * outlives a Function App, so the test that started it stops it.
   */
  async stopTables(): Promise<void> {
    const result = await stopAzurite(join(this.root, AZURITE_FOLDER), { force: true });
    if (result.kind === "unreachable") {
      throw new Error(`the data folder's Azurite (process ${result.pid}) did not stop`);
    }
  }

  /** What each start said about its tables: the banner's Table Storage lines, or its failure. */
  startLines(): string[] {
    return this.logLines(/^(Table Storage| {2}Azurite process|npm start)/);
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
