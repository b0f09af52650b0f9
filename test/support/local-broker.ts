import { type ChildProcess, fork } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { buildSync } from "esbuild";

import { BrokerDatabase } from "../../shared/queue/local-broker";

/** Polls until `check` returns a value, for at most `timeoutMs` (a guard, not an assertion). */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Bundles a test's child-process entry once, to run with plain node. */
export function bundleChild(entry: string, outDir: string): string {
  const outfile = join(outDir, `${entry.replace(/^.*[\\/]/, "").replace(/\.ts$/, "")}.js`);
  buildSync({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target: "node22",
    external: ["@azure/functions-core"],
    outfile,
    logLevel: "silent",
  });
  return outfile;
}

/** Child processes of one test file: forked with settings in the environment, killed after each test. */
export class ChildProcesses {
  readonly #children: ChildProcess[] = [];

  /** Forks `script` and resolves once it sends `ready` (or its first message, `firstMessage`). */
  async start(
    script: string,
    env: Record<string, string>,
    options: { stderrFile?: string; until?: (message: unknown) => boolean } = {},
  ): Promise<{ child: ChildProcess; first: unknown }> {
    const stderr = options.stderrFile === undefined ? "inherit" : openSync(options.stderrFile, "a");
    const child = fork(script, [], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", stderr, "ipc"],
    });
    if (typeof stderr === "number") closeSync(stderr);
    this.#children.push(child);
    const first = await new Promise<unknown>((done, fail) => {
      child.once("error", fail);
      child.once("exit", (code) => fail(new Error(`child exited early (${code})`)));
      child.on("message", (message) => {
        if ((options.until ?? ((m) => m === "ready"))(message)) done(message);
      });
    });
    child.removeAllListeners("exit");
    return { child, first };
  }

  /** Asks a child to stop (`stop` on its IPC channel) and waits until it has exited. */
  async stop(child: ChildProcess): Promise<void> {
    const exited = new Promise((done) => child.once("exit", done));
    child.send("stop");
    await exited;
  }

  /** SIGKILL, and waits until the process is gone. */
  async kill(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGKILL");
    await exited;
  }

  async killAll(): Promise<void> {
    await Promise.all(this.#children.splice(0).map((c) => this.kill(c)));
  }
}

/** Lines of a log file that child processes append to (none yet: empty). */
export function linesOf(file: string): string[] {
  return existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l !== "")
    : [];
}

/** The broker's database in `directory`, for what a test reads or plants directly. */
export function brokerDatabase(directory: string): BrokerDatabase {
  return new BrokerDatabase(directory);
}
