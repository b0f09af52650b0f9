import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const LOCK_FILE = "herald.pid";

export interface FolderLock {
  release(): void;
}

/**
 * Who holds a folder: `pid` wrote the lock file; `owner`, when set, is the process `pid` works
 * for (the `npm start` whose Azurite child holds `.data/azurite`). A holder whose owner is gone
 * is finishing up (Azurite saving its data after its `npm start` was killed) and lets go soon.
 */
export interface LockHolder {
  readonly pid: number;
  readonly owner: number | undefined;
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
 * An exited process its parent has not reaped yet still answers `kill(pid, 0)`. An orphaned
 * Azurite child is reaped by init, which in a container may never happen. Linux only.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/** Line 1 the holder's pid, line 2 (optional) its owner's pid. */
function readHolder(path: string): LockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  const [pid, owner] = text.split("\n").map((line) => Number(line.trim()));
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return undefined;
  return {
    pid,
    owner: owner !== undefined && Number.isInteger(owner) && owner > 0 ? owner : undefined,
  };
}

/**
 * A pid file claiming a folder for this process (working for `owner`, if given), created
 * exclusively. A file left by a process that no longer runs (killed with -9, machine restarted)
 * is taken over. Undefined when a live process holds it.
 */
export function acquireFolderLock(folder: string, owner?: number): FolderLock | undefined {
  mkdirSync(folder, { recursive: true });
  const path = join(folder, LOCK_FILE);
  const content = owner === undefined ? `${process.pid}\n` : `${process.pid}\n${owner}\n`;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      writeFileSync(path, content, { flag: "wx" });
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          if (readHolder(path)?.pid !== process.pid) return;
          try {
            unlinkSync(path);
          } catch {
            // Already gone: nothing to release.
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = readHolder(path);
      if (holder !== undefined && holder.pid !== process.pid && isAlive(holder.pid)) {
        return undefined;
      }
      try {
        unlinkSync(path); // stale (or removed between our attempt and the read)
      } catch {
        // Someone else removed it first.
      }
    }
  }
  return undefined;
}

/** The live process holding `folder`, if any. */
export function folderLockHolder(folder: string): LockHolder | undefined {
  const holder = readHolder(join(folder, LOCK_FILE));
  return holder !== undefined && isAlive(holder.pid) ? holder : undefined;
}

export type FolderClaim =
  | {
      readonly lock: FolderLock;
      /** A holder whose owner had died, waited for while it finished (saved its data). */
      readonly waitedFor?: { readonly pid: number; readonly ms: number };
    }
  | { readonly lock: undefined; readonly holder: LockHolder };

/**
 * `acquireFolderLock`, but a holder that is only finishing up (its owner is gone: an Azurite
 * child saving its tables after its `npm start` was killed) is waited for, up to `orphanWaitMs`,
 * instead of being treated as a second user of the folder.
 */
export async function claimFolder(
  folder: string,
  options: { owner?: number; orphanWaitMs: number; signal?: AbortSignal },
): Promise<FolderClaim> {
  const started = Date.now();
  let orphan: number | undefined;
  for (;;) {
    const lock = acquireFolderLock(folder, options.owner);
    if (lock !== undefined) {
      return orphan === undefined
        ? { lock }
        : { lock, waitedFor: { pid: orphan, ms: Date.now() - started } };
    }
    // Undefined: it let go between our attempt and the read; try again.
    const holder = folderLockHolder(folder);
    if (holder !== undefined) {
      const finishing = holder.owner !== undefined && !isAlive(holder.owner);
      if (!finishing || Date.now() - started > options.orphanWaitMs || options.signal?.aborted) {
        return { lock: undefined, holder };
      }
      orphan = holder.pid;
    }
    await new Promise((done) => setTimeout(done, 25));
  }
}
