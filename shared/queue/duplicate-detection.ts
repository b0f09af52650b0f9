import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { createExclusive, isErrorCode } from "./exclusive-file";

/**
 * Duplicate detection by message id within a window, shared by every process that sends to
 * one local queue, as Service Bus does it for a queue with `requiresDuplicateDetection`: a
 * message whose id was accepted less than `windowMs` ago is accepted by the sender and
 * silently dropped (https://learn.microsoft.com/azure/service-bus-messaging/duplicate-detection).
 *
 * Layout, in `directory`: one file per message id seen, named by the SHA-256 of the id (ids are
 * arbitrary strings; names must be safe), holding the time it was accepted. The first sender
 * creates it exclusively (`link` fails when the name exists), which is what makes two
 * processes sending the same id at once accept exactly one. An entry older than the window is
 * replaced, and swept, only under a short per-entry claim (`<hash>.claim`), because "read it,
 * see it expired, replace it" is not atomic by itself: two senders could both see it expired
 * and both accept.
 */
export interface DuplicateDetectionOptions {
  /** Folder of the entries (one per queue). */
  readonly directory: string;
  /** Service Bus' default duplicate detection window is ten minutes. */
  readonly windowMs?: number;
}

interface Entry {
  readonly messageId: string;
  readonly acceptedAtMs: number;
  /** The accepting sender's process, and whether it confirmed that it wrote the message. */
  readonly pid?: number;
  readonly published?: boolean;
}

/**
 * An entry whose sender never confirmed the write is a duplicate only while that sender may
 * still be writing: a sender killed between `accept` and its write must not make the retry of
 * its message (same id) look like a duplicate of a message that never existed.
 */
const UNCONFIRMED_GRACE_MS = 30_000;

function processAlive(pid: number | undefined): boolean {
  if (pid === undefined || pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return isErrorCode(error, "EPERM");
  }
}

/** A claim older than this belongs to a sender that died while holding it. */
const STALE_CLAIM_MS = 10_000;
const CLAIM_RETRIES = 50;
const CLAIM_RETRY_MS = 10;

export class DuplicateDetector {
  readonly directory: string;
  readonly windowMs: number;
  #ready: Promise<void> | undefined;
  #lastSweepMs = 0;

  constructor(options: DuplicateDetectionOptions) {
    this.directory = options.directory;
    this.windowMs = options.windowMs ?? 600_000;
  }

  /**
   * True when `messageId` was not accepted within the window: it is recorded as accepted now
   * and the caller sends the message. False: a duplicate, to drop.
   */
  async accept(messageId: string, nowMs = Date.now()): Promise<boolean> {
    await this.#ensureFolder();
    this.#maybeSweep(nowMs);
    const path = this.#entryPath(messageId);
    const entry: Entry = { messageId, acceptedAtMs: nowMs, pid: process.pid, published: false };
    if (await createExclusive(path, entry)) return true;
    const existing = await this.#read(path);
    if (existing !== undefined && this.#blocks(existing, nowMs)) return false;
    // Expired, never confirmed by a dead sender, or vanished under a sweep: replace it,
    // deciding under the entry's claim.
    return this.#withClaim(path, async () => {
      const current = await this.#read(path);
      if (current !== undefined && this.#blocks(current, nowMs)) return false;
      await unlink(path).catch((error: unknown) => {
        if (!isErrorCode(error, "ENOENT")) throw error;
      });
      return createExclusive(path, entry);
    });
  }

  /** Records that the message accepted under `messageId` was written: it now blocks its copies. */
  async confirm(messageId: string): Promise<void> {
    const path = this.#entryPath(messageId);
    const current = await this.#read(path);
    if (current === undefined) return;
    const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
    await writeFile(tmp, JSON.stringify({ ...current, published: true }));
    await rename(tmp, path);
  }

  /** Whether an entry still makes a message with its id a duplicate. */
  #blocks(entry: Entry, nowMs: number): boolean {
    if (nowMs - entry.acceptedAtMs >= this.windowMs) return false;
    if (entry.published !== false) return true; // confirmed (or written before confirmations)
    return processAlive(entry.pid) && nowMs - entry.acceptedAtMs < UNCONFIRMED_GRACE_MS;
  }

  /**
   * Forgets an id accepted by `accept` whose message could not be written after all, so that
   * the sender's retry is not dropped as a duplicate of a message that never existed.
   */
  async forget(messageId: string): Promise<void> {
    await unlink(this.#entryPath(messageId)).catch((error: unknown) => {
      if (!isErrorCode(error, "ENOENT")) throw error;
    });
  }

  /** Removes entries older than the window; returns how many. */
  async sweep(nowMs = Date.now()): Promise<number> {
    await this.#ensureFolder();
    let removed = 0;
    for (const name of await readdir(this.directory)) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const path = join(this.directory, name);
      try {
        // The file's time first, so a sweep does not read every entry.
        if (nowMs - (await stat(path)).mtimeMs < this.windowMs) continue;
      } catch (error) {
        if (isErrorCode(error, "ENOENT")) continue;
        throw error;
      }
      const swept = await this.#withClaim(path, async () => {
        const current = await this.#read(path);
        if (current === undefined || nowMs - current.acceptedAtMs < this.windowMs) return false;
        await unlink(path);
        return true;
      }).catch(() => false); // busy: the next sweep gets it
      if (swept) removed += 1;
    }
    return removed;
  }

  #entryPath(messageId: string): string {
    return join(this.directory, createHash("sha256").update(messageId).digest("hex"));
  }

  async #read(path: string): Promise<Entry | undefined> {
    try {
      return JSON.parse(await readFile(path, "utf8")) as Entry;
    } catch (error) {
      if (isErrorCode(error, "ENOENT")) return undefined;
      throw error;
    }
  }

  async #withClaim<T>(path: string, work: () => Promise<T>): Promise<T> {
    const claim = `${path}.claim`;
    for (let attempt = 0; attempt < CLAIM_RETRIES; attempt += 1) {
      try {
        await writeFile(claim, String(process.pid), { flag: "wx" });
      } catch (error) {
        if (!isErrorCode(error, "EEXIST")) throw error;
        const age = await stat(claim).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (age > STALE_CLAIM_MS) await unlink(claim).catch(() => undefined);
        await new Promise((done) => setTimeout(done, CLAIM_RETRY_MS));
        continue;
      }
      try {
        return await work();
      } finally {
        await unlink(claim).catch(() => undefined);
      }
    }
    throw new Error(`Duplicate detection entry ${path} stayed claimed by another sender`);
  }

  /** At most once per quarter window, in the background: entries only need to go eventually. */
  #maybeSweep(nowMs: number): void {
    if (nowMs - this.#lastSweepMs < Math.max(1_000, this.windowMs / 4)) return;
    this.#lastSweepMs = nowMs;
    this.sweep(nowMs).catch(() => undefined); // best effort: a failed sweep retries next time
  }

  async #ensureFolder(): Promise<void> {
    this.#ready ??= mkdir(this.directory, { recursive: true }).then(() => undefined);
    try {
      await this.#ready;
    } catch (error) {
      this.#ready = undefined;
      throw error;
    }
  }
}
