import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { createExclusive, isErrorCode } from "./exclusive-file";

/**
 * The exclusive, expiring lock on one session of a local session queue, shared by every
 * process that drains it: what Service Bus' session lock is
 * (https://learn.microsoft.com/azure/service-bus-messaging/message-sessions).
 *
 * Layout, in the session's `lock/` folder: numbered generations `<n>.json`, each holding its
 * holder and expiry. The holder is whoever created the highest generation, while it has not
 * expired or been released. Taking a free or expired session is creating generation n + 1
 * exclusively (`link` fails when the name exists), so of two consumers that both saw
 * generation n expire exactly one wins; a lock file that is deleted and created again under
 * the same name could not tell a stale holder from a new one. Only a generation's holder
 * rewrites it (renewal, release), by an atomic rename, so readers never see half a file.
 */
interface LeaseFile {
  readonly owner: string;
  readonly pid: number;
  readonly expiresAtMs: number;
  readonly released: boolean;
}

export type AcquireResult =
  | { readonly kind: "acquired"; readonly lease: SessionLease }
  | { readonly kind: "busy"; readonly untilMs: number };

const GENERATION_DIGITS = 12;
/**
 * A lease is not used this close to its expiry (a tenth of short leases), so a settle that
 * starts just before the expiry is not still running when another consumer takes over.
 */
const SAFETY_MARGIN_MS = 250;

function generationName(generation: number): string {
  return `${String(generation).padStart(GENERATION_DIGITS, "0")}.json`;
}

async function generations(folder: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (error) {
    if (isErrorCode(error, "ENOENT")) return [];
    throw error;
  }
  const result: number[] = [];
  for (const name of names) {
    const match = /^(\d+)\.json$/.exec(name);
    if (match) result.push(Number(match[1]));
  }
  return result.sort((a, b) => a - b);
}

async function readLease(path: string): Promise<LeaseFile | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as LeaseFile;
  } catch (error) {
    if (isErrorCode(error, "ENOENT")) return undefined;
    throw error;
  }
}

export class SessionLease {
  readonly #folder: string;
  readonly #path: string;
  readonly #generation: number;
  readonly #owner: string;
  readonly #durationMs: number;
  #expiresAtMs: number;
  #ended = false;
  /** Renewals and the release run one after another, so a late renewal never revives a release. */
  #chain: Promise<unknown> = Promise.resolve();

  private constructor(
    folder: string,
    generation: number,
    owner: string,
    durationMs: number,
    expiresAtMs: number,
  ) {
    this.#folder = folder;
    this.#generation = generation;
    this.#path = join(folder, generationName(generation));
    this.#owner = owner;
    this.#durationMs = durationMs;
    this.#expiresAtMs = expiresAtMs;
  }

  /** Takes the session when nobody holds it (never held, released, or expired). */
  static async tryAcquire(
    folder: string,
    owner: string,
    durationMs: number,
  ): Promise<AcquireResult> {
    await mkdir(folder, { recursive: true });
    const existing = await generations(folder);
    const top = existing.at(-1) ?? 0;
    if (top > 0) {
      const current = await readLease(join(folder, generationName(top)));
      // Vanished: a newer generation's holder cleaned it up; look again later.
      if (current === undefined) return { kind: "busy", untilMs: Date.now() };
      if (!current.released && current.expiresAtMs > Date.now()) {
        return { kind: "busy", untilMs: current.expiresAtMs };
      }
    }
    const generation = top + 1;
    const expiresAtMs = Date.now() + durationMs;
    const created = await createExclusive(join(folder, generationName(generation)), {
      owner,
      pid: process.pid,
      expiresAtMs,
      released: false,
    });
    if (!created) return { kind: "busy", untilMs: Date.now() + durationMs };
    // Older generations are history now; only the newest one decides.
    for (const old of existing) {
      await unlink(join(folder, generationName(old))).catch(() => undefined); // another taker may race us
    }
    return {
      kind: "acquired",
      lease: new SessionLease(folder, generation, owner, durationMs, expiresAtMs),
    };
  }

  get expiresAtMs(): number {
    return this.#expiresAtMs;
  }

  /** Whether this consumer may still take and settle the session's messages. */
  holds(nowMs = Date.now()): boolean {
    const margin = Math.min(SAFETY_MARGIN_MS, this.#durationMs / 10);
    return !this.#ended && nowMs < this.#expiresAtMs - margin;
  }

  /** Extends the lease by its duration; false when it was already lost (expired or taken). */
  renew(): Promise<boolean> {
    const next = this.#chain.then(async () => {
      if (!this.holds()) return this.#lose();
      const expiresAtMs = Date.now() + this.#durationMs;
      await this.#write({ owner: this.#owner, pid: process.pid, expiresAtMs, released: false });
      // Someone took over after all (this process stalled past the expiry): it is theirs.
      if ((await generations(this.#folder)).some((g) => g > this.#generation)) return this.#lose();
      this.#expiresAtMs = expiresAtMs;
      return true;
    });
    this.#chain = next.catch(() => undefined); // the caller sees the failure; the chain goes on
    return next;
  }

  /** Gives the session back at once, for another consumer to take. */
  release(): Promise<void> {
    const next = this.#chain.then(async () => {
      if (!this.holds()) {
        this.#lose();
        return;
      }
      this.#ended = true;
      await this.#write({ owner: this.#owner, pid: process.pid, expiresAtMs: 0, released: true });
    });
    this.#chain = next.catch(() => undefined);
    return next;
  }

  /** Stops using the lease without releasing it: it expires by itself (messages still running). */
  abandon(): void {
    this.#ended = true;
  }

  #lose(): false {
    this.#ended = true;
    return false;
  }

  async #write(content: LeaseFile): Promise<void> {
    const tmp = join(this.#folder, `${randomBytes(6).toString("hex")}.tmp`);
    await writeFile(tmp, JSON.stringify(content));
    await rename(tmp, this.#path);
  }
}
