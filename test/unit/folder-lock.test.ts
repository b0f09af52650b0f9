import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { buildSync } from "esbuild";

import {
  claimLock,
  DAEMON_SCRIPT_MARK,
  type FolderLock,
  holdsLock,
  LOCK_FILE,
  readLock,
  releaseLock,
} from "../../shared/local-host/folder-lock";

/** A real process that lives `ms` milliseconds (or until killed), with `mark` on its command line. */
function processFor(ms: number, mark = DAEMON_SCRIPT_MARK): { child: ChildProcess; pid: number } {
  const child = spawn(process.execPath, ["-e", `setTimeout(() => {}, ${ms})`, mark], {
    stdio: "ignore",
  });
  return { child, pid: child.pid! };
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const { child, pid } = processFor(0);
  await new Promise((done) => child.once("exit", done));
  return pid;
}

const lockOf = (pid: number, controlPort = 4242): FolderLock => ({
  pid,
  controlPort,
  protocol: 1,
  startedAt: "2026-12-01T00:00:00.000Z",
});

describe("the data folder's lock", () => {
  const folders: string[] = [];
  const children: ChildProcess[] = [];

  afterEach(() => {
    children.splice(0).forEach((c) => c.kill("SIGKILL"));
    folders.splice(0).forEach((f) => rmSync(f, { recursive: true, force: true }));
  });

  function folder(): string {
    const path = mkdtempSync(join(tmpdir(), "herald-lock-"));
    folders.push(path);
    return path;
  }

  it("claims a free folder with a lock naming this process and its control port, and releases only its own", () => {
    const dir = folder();
    expect(claimLock(dir, lockOf(process.pid))).toEqual({ kind: "claimed" });
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8"))).toEqual(lockOf(process.pid));
    expect(holdsLock(dir, process.pid)).toBe(true);
    releaseLock(dir, process.pid + 1);
    expect(holdsLock(dir, process.pid)).toBe(true);
    releaseLock(dir, process.pid);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it("takes over a lock whose process is gone (killed with -9, the machine restarted)", async () => {
    const dir = folder();
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify(lockOf(await deadPid())));
    expect(claimLock(dir, lockOf(process.pid))).toEqual({ kind: "claimed" });
    expect(holdsLock(dir, process.pid)).toBe(true);
  });

  it("leaves the folder to a live Azurite process, and names it", () => {
    const dir = folder();
    const holder = processFor(30_000);
    children.push(holder.child);
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify(lockOf(holder.pid, 5555)));
    const claim = claimLock(dir, lockOf(process.pid));
    expect(claim).toMatchObject({
      kind: "held",
      by: { kind: "lock", lock: lockOf(holder.pid, 5555) },
    });
    expect(holdsLock(dir, holder.pid)).toBe(true);
  });

  it("leaves a folder in the older two-line format to the live Azurite child that wrote it", () => {
    const dir = folder();
    const holder = processFor(30_000, "azurite-process-entry");
    children.push(holder.child);
    writeFileSync(join(dir, LOCK_FILE), `${holder.pid}\n${process.pid}\n`);
    expect(readLock(dir)).toMatchObject({ kind: "legacy", pid: holder.pid });
    expect(claimLock(dir, lockOf(process.pid))).toMatchObject({
      kind: "held",
      by: { kind: "legacy", pid: holder.pid },
    });
  });

  const linux = existsSync("/proc/self/cmdline") ? it : it.skip;
  linux(
    "takes over a lock whose pid now belongs to a process that is not Azurite (a reused pid)",
    () => {
      const dir = folder();
      const stranger = processFor(30_000, "not-herald");
      children.push(stranger.child);
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify(lockOf(stranger.pid)));
      expect(claimLock(dir, lockOf(process.pid))).toEqual({ kind: "claimed" });
    },
  );

  it("gives the folder to exactly one of eight processes that claim it at the same moment", async () => {
    const dir = folder();
    const script = join(dir, "claim.js");
    buildSync({
      stdin: {
        contents: `const { claimLock } = require(${JSON.stringify(resolve(__dirname, "../../shared/local-host/folder-lock"))});
          const at = Number(process.argv[2]);
          setTimeout(() => {
            const claim = claimLock(process.argv[3], { pid: process.pid, controlPort: 1, protocol: 1, startedAt: "" });
            console.log(claim.kind);
            setTimeout(() => {}, 60000);
          }, Math.max(0, at - Date.now()));`,
        resolveDir: __dirname,
        loader: "js",
      },
      bundle: true,
      platform: "node",
      outfile: script,
      logLevel: "error",
    });
    const at = Date.now() + 1_000;
    const runs = Array.from({ length: 8 }, () => {
      // `azurite-daemon` on the command line: each is a holder the others must respect.
      const child = spawn(process.execPath, [script, String(at), dir, DAEMON_SCRIPT_MARK], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      children.push(child);
      // Each stays alive (holding, if it won) until afterEach kills it: a late one still meets
      // a live holder.
      let out = "";
      return new Promise<string>((done) => {
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes("\n")) done(out.trim());
        });
        child.once("exit", (code) => done(`exited ${code}`));
      });
    });
    const answers = await Promise.all(runs);
    expect(answers.filter((a) => a === "claimed")).toHaveLength(1);
    expect(answers.filter((a) => a === "held")).toHaveLength(7);
  });
});
