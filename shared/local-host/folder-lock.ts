import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { z } from "zod";

/**
 * The lock of a data folder's Azurite process: `herald.pid` in the folder, created exclusively
 * by that process once its control port listens, removed when it exits. It names the process
 * and the port where it answers (`azurite-protocol.ts`), so a start finds it, asks it who it is
 * and which folder it serves, and attaches. Never rewritten: a process only ever removes its own.
 */
export const LOCK_FILE = "herald.pid";

/** The script name every Azurite process of Herald's runs (`azurite-daemon.js`, or a test's copy). */
export const DAEMON_SCRIPT_MARK = "azurite-daemon";

const lockSchema = z.object({
  pid: z.number().int().positive(),
  controlPort: z.number().int().min(1).max(65_535),
  protocol: z.number().int().positive(),
  startedAt: z.string(),
});
export type FolderLock = z.infer<typeof lockSchema>;

export type LockRead =
  | { readonly kind: "none" }
  | { readonly kind: "lock"; readonly lock: FolderLock; readonly text: string }
  /** Two lines of pids: the Azurite child of an `npm start` from before the folder's own process. */
  | { readonly kind: "legacy"; readonly pid: number; readonly text: string }
  | { readonly kind: "unreadable"; readonly text: string };

export function readLock(folder: string): LockRead {
  let text: string;
  try {
    text = readFileSync(join(folder, LOCK_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { kind: "none" };
    throw error;
  }
  try {
    const parsed = lockSchema.safeParse(JSON.parse(text));
    if (parsed.success) return { kind: "lock", lock: parsed.data, text };
  } catch {
    // Not JSON: maybe the older two-line format.
  }
  const pid = Number(text.split("\n")[0]?.trim());
  if (Number.isInteger(pid) && pid > 0) return { kind: "legacy", pid, text };
  return { kind: "unreadable", text };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  return !isZombie(pid);
}

/**
 * An exited process its parent has not reaped yet still answers `kill(pid, 0)`; a detached
 * process is reaped by init, which in a container may never happen. Linux only.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/**
 * Whether `pid` runs and may be the process a lock names. A pid is reused after the process
 * exits (and after a reboot): where /proc says what a process runs (Linux), a live process that
 * does not run an Azurite script of Herald's is not the holder. Elsewhere every live pid may be.
 */
export function mayHoldLock(pid: number, kind: LockRead["kind"]): boolean {
  if (!isAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return true;
  }
  // The older format's holder ran `azurite-process-entry.js`.
  return cmdline.includes(kind === "legacy" ? "azurite-process-entry" : DAEMON_SCRIPT_MARK);
}

export type Claim =
  | { readonly kind: "claimed" }
  | { readonly kind: "held"; readonly by: LockRead & { kind: "lock" | "legacy" } };

/**
 * Creates the lock for this process, exclusively. A lock left by a process that is gone (killed
 * with -9, the machine restarted) is removed first, after reading it again: a lock another
 * process has just created in its place is left alone. The lock is written beside and linked
 * into place, so nobody ever reads it half-written.
 */
export function claimLock(folder: string, lock: FolderLock): Claim {
  mkdirSync(folder, { recursive: true });
  const path = join(folder, LOCK_FILE);
  const draft = `${path}.${process.pid}`;
  writeFileSync(draft, `${JSON.stringify(lock)}\n`);
  try {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (linkNew(draft, path)) return { kind: "claimed" };
      const found = readLock(folder);
      if (found.kind === "none") continue;
      if (found.kind === "lock" || found.kind === "legacy") {
        const pid = found.kind === "lock" ? found.lock.pid : found.pid;
        if (pid !== process.pid && mayHoldLock(pid, found.kind)) return { kind: "held", by: found };
      }
      removeIfUnchanged(path, found.text);
    }
  } finally {
    unlinkSync(draft);
  }
  const found = readLock(folder);
  if (found.kind === "lock" || found.kind === "legacy") return { kind: "held", by: found };
  throw new Error(`${path}: could not be claimed (it keeps changing)`);
}

/** `link(2)` fails when the target exists: an atomic "create with this content". */
function linkNew(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
}

function removeIfUnchanged(path: string, text: string): void {
  try {
    if (readFileSync(path, "utf8") === text) unlinkSync(path);
  } catch {
    // Gone already.
  }
}

/** Whether the folder's lock still names `pid` (someone may have deleted the folder). */
export function holdsLock(folder: string, pid: number): boolean {
  const found = readLock(folder);
  return found.kind === "lock" && found.lock.pid === pid;
}

/** Removes the lock if it is `pid`'s. */
export function releaseLock(folder: string, pid: number): void {
  const found = readLock(folder);
  if (found.kind === "lock" && found.lock.pid === pid) {
    removeIfUnchanged(join(folder, LOCK_FILE), found.text);
  }
}
