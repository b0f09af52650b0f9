import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  acquireFolderLock,
  claimFolder,
  isAlive,
  LOCK_FILE,
} from "../../shared/local-host/folder-lock";

/** A real process that lives `ms` milliseconds (or until killed). */
function processFor(ms: number): { child: ChildProcess; pid: number; gone: Promise<void> } {
  const child = spawn(process.execPath, ["-e", `setTimeout(() => {}, ${ms})`], { stdio: "ignore" });
  const gone = new Promise<void>((done) => child.once("exit", () => done()));
  return { child, pid: child.pid!, gone };
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const { pid, gone } = processFor(0);
  await gone;
  return pid;
}

describe("claimFolder", () => {
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

  it("claims a free folder, writing this process and its owner, and frees it on release", async () => {
    const dir = folder();
    const claim = await claimFolder(dir, { owner: 4242, orphanWaitMs: 1_000 });
    expect(claim.lock).toBeDefined();
    expect(readFileSync(join(dir, LOCK_FILE), "utf8")).toBe(`${process.pid}\n4242\n`);
    claim.lock?.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it("takes over a lock file whose process is gone (killed with -9)", async () => {
    const dir = folder();
    writeFileSync(join(dir, LOCK_FILE), `${await deadPid()}\n`);
    const claim = await claimFolder(dir, { orphanWaitMs: 1_000 });
    expect(claim.lock).toBeDefined();
    expect(claim).not.toHaveProperty("waitedFor");
    claim.lock?.release();
  });

  it("leaves a folder to a live holder whose owner runs (a second npm start)", async () => {
    const dir = folder();
    const holder = processFor(30_000);
    children.push(holder.child);
    writeFileSync(join(dir, LOCK_FILE), `${holder.pid}\n${process.pid}\n`);
    const claim = await claimFolder(dir, { orphanWaitMs: 5_000 });
    expect(claim.lock).toBeUndefined();
    expect(claim.lock === undefined && claim.holder).toEqual({
      pid: holder.pid,
      owner: process.pid,
    });
    expect(acquireFolderLock(dir)).toBeUndefined();
  });

  it("waits for a holder whose owner died (Azurite saving after its npm start was killed), then claims", async () => {
    const dir = folder();
    const orphan = processFor(400);
    children.push(orphan.child);
    writeFileSync(join(dir, LOCK_FILE), `${orphan.pid}\n${await deadPid()}\n`);
    const claim = await claimFolder(dir, { orphanWaitMs: 20_000 });
    expect(isAlive(orphan.pid)).toBe(false);
    expect(claim.lock).toBeDefined();
    expect(claim.lock !== undefined && claim.waitedFor?.pid).toBe(orphan.pid);
    claim.lock?.release();
  });

  it("gives up waiting for such a holder after orphanWaitMs and reports it", async () => {
    const dir = folder();
    const orphan = processFor(30_000);
    children.push(orphan.child);
    writeFileSync(join(dir, LOCK_FILE), `${orphan.pid}\n${await deadPid()}\n`);
    const claim = await claimFolder(dir, { orphanWaitMs: 100 });
    expect(claim.lock).toBeUndefined();
    expect(claim.lock === undefined && claim.holder.pid).toBe(orphan.pid);
  });
});
