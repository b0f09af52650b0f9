import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { TEST_RUN_VARIABLE } from "./leftover-processes";
import { PROJECT_ROOT } from "./markdown";

export const isRepository = existsSync(join(PROJECT_ROOT, ".git"));

function git(args: string[], cwd = PROJECT_ROOT): string {
  return execFileSync("git", args, { cwd, encoding: "utf8" });
}

/**
 * A clone of this repository as a newcomer gets it, with this working tree's changes on top
 * (modified, added and untracked files copied, deleted ones removed: the test runs what is here,
 * committed or not, and writes nothing into this repository), and node_modules linked entry by
 * entry (its own `.cache`, where nothing of this checkout's can leak in).
 */
export function cloneWorkingTree(into: string): void {
  git(["clone", "--quiet", "--no-hardlinks", PROJECT_ROOT, into]);
  const lines = (text: string) => text.split("\n").filter((line) => line !== "");
  const changed = [
    ...lines(git(["diff", "--name-only", "--diff-filter=d", "HEAD"])),
    ...lines(git(["ls-files", "--others", "--exclude-standard"])),
  ];
  for (const file of changed) {
    mkdirSync(dirname(join(into, file)), { recursive: true });
    copyFileSync(join(PROJECT_ROOT, file), join(into, file));
  }
  for (const file of lines(git(["diff", "--name-only", "--diff-filter=D", "HEAD"]))) {
    rmSync(join(into, file), { force: true });
  }
  mkdirSync(join(into, "node_modules"));
  for (const entry of readdirSync(join(PROJECT_ROOT, "node_modules"))) {
    if (entry === ".cache") continue;
    symlinkSync(join(PROJECT_ROOT, "node_modules", entry), join(into, "node_modules", entry));
  }
}

/**
 * The environment of a newcomer's shell: the node running jest first on PATH (so npm runs the
 * same Node 22), a home, and the test run's marker (the global teardown fails the run if a
 * process started with it outlives the run). Nothing else of this process's environment.
 */
export function newcomerEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const run = process.env[TEST_RUN_VARIABLE];
  return {
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`,
    HOME: process.env.HOME ?? tmpdir(),
    ...(run !== undefined ? { [TEST_RUN_VARIABLE]: run } : {}),
    ...extra,
  };
}

/** A command started as a terminal starts one: its own process group, its output in a file. */
export interface TerminalRun {
  readonly child: ChildProcess;
  readonly log: string;
  readonly exited: Promise<number | null>;
  output(): string;
}

export function runInTerminal(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; log: string },
): TerminalRun {
  const out = openSync(options.log, "w");
  // detached: a process group of its own, so the test can send it "Ctrl+C".
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return { child, log: options.log, exited, output: () => readFileSync(options.log, "utf8") };
}

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/** Reads a run's output until `ready` finds what it waits for; fails if the run ends first. */
export async function waitForOutput<T>(
  run: TerminalRun,
  ready: (output: string) => T | undefined,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = run.output();
    const found = ready(text);
    if (found !== undefined) return found;
    if (run.child.exitCode !== null || Date.now() > deadline)
      throw new Error(
        `${run.child.spawnargs.join(" ")} ${run.child.exitCode !== null ? `exited with ${run.child.exitCode}` : "timed out"}:\n${text}`,
      );
    await sleep(50);
  }
}
