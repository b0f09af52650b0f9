import { randomBytes, randomUUID } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { mkdir, open, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";

import {
  InvocationContext,
  type LogHandler,
  type ServiceBusQueueHandler,
  type TriggerMetadata,
} from "@azure/functions";

import { toError } from "../errors";
import type { OutgoingMessage, QueuePort } from "./queue-port";

/**
 * A durable queue in a folder, for `npm start` and the CLI: the same contract as the Service
 * Bus trigger (peek-lock, `deliveryCount`, dead-letter after max deliveries, scheduled
 * enqueue, at-least-once) without a broker.
 *
 * Layout, under `<directory>/<queueName>/`: one immutable JSON file per message; its state is
 * in its file name and folder, so every state change is one atomic `rename`, which is what
 * makes it safe for several processes (one drains while the CLI enqueues, or two drain):
 * - `messages/<visibleAtMs>.<key>.<deliveryCount>.json`: waiting; visible once the time passed;
 * - `locked/<lockedUntilMs>.<key>.<deliveryCount>.json`: taken by a consumer; the rename that
 *   takes it also counts the delivery, so a consumer killed mid-message still counted it;
 * - `deadletter/<key>.json`: gave up, with the reason;
 * - `tmp/`: files being written, renamed into place only when complete.
 * A lock whose time passed (the consumer died or hung past renewal) is moved back by whichever
 * consumer looks next.
 * - `quarantine/<name>`: a message file that cannot be read (truncated, not JSON), moved aside
 *   with a log line so the rest of the queue keeps draining; inspect or delete it by hand.
 *
 * Durability: a message file is fsynced before the rename that publishes it, so a power cut
 * cannot leave a visible but empty or half-written file (the rename alone orders nothing).
 *
 * Clocks: lock times in file names are wall-clock milliseconds, because several processes
 * share them; that part cannot avoid wall time. Within one process the locks it holds are also
 * tracked on the monotonic clock (`performance.now()`), and expiry recovery never takes back a
 * lock this process still holds by that clock: a wall-clock jump forward cannot hand its
 * in-flight message to its own next receive. Across processes a jump forward larger than half
 * the lock duration can still make another consumer see a held lock as expired until the next
 * renewal (every half lock duration, timed monotonically) moves it forward again.
 */
export interface LocalQueueOptions {
  /** Root folder (`LocalQueueDirectory`); the queue lives in `<directory>/<queueName>`. */
  readonly directory: string;
  readonly queueName?: string;
  /** Service Bus' default lock duration is one minute. */
  readonly lockDurationMs?: number;
  /** Service Bus' default MaxDeliveryCount is 10. */
  readonly maxDeliveryCount?: number;
  /** Where the queue reports what it had to do on its own (a quarantined file); default console. */
  readonly onWarning?: (line: string) => void;
}

export interface ReceivedMessage {
  readonly messageId: string;
  readonly correlationId: string | undefined;
  readonly applicationProperties: Readonly<Record<string, string | number | boolean>>;
  readonly body: unknown;
  readonly enqueuedTimeUtc: Date;
  readonly sequenceNumber: number;
  /** 1 on the first delivery, as on Service Bus. */
  readonly deliveryCount: number;
  readonly lockToken: string;
  readonly lockedUntil: Date;
}

export interface DeadLetteredMessage {
  readonly messageId: string;
  readonly correlationId: string | undefined;
  readonly applicationProperties: Readonly<Record<string, string | number | boolean>>;
  readonly body: unknown;
  readonly enqueuedTimeUtc: Date;
  readonly deliveryCount: number;
  readonly deadLetterReason: string;
  readonly deadLetterErrorDescription: string;
  readonly deadLetteredTimeUtc: Date;
}

/** A dead letter as `herald dlq` sees it: `id` names it, `sessionId` is kept on replay. */
export interface LocalDeadLetter extends DeadLetteredMessage {
  readonly id: string;
  readonly sessionId: string | undefined;
}

export interface QueueCounts {
  /** Visible now. */
  readonly active: number;
  /** Waiting for their scheduled time (or a retry delay). */
  readonly scheduled: number;
  readonly locked: number;
  readonly deadLettered: number;
}

export interface DrainOptions {
  /** Becomes `context.functionName`. */
  readonly functionName: string;
  /** As host.json `extensions.serviceBus.maxConcurrentCalls`. */
  readonly maxConcurrentCalls?: number;
  /** How long a failed message waits before it is visible again. */
  readonly retryDelayMs?: number;
  /** Longest wait between looks at the folder; new files also wake the loop at once. */
  readonly pollIntervalMs?: number;
  /** As host.json `maxAutoLockRenewalDuration` (five minutes by default). */
  readonly maxAutoLockRenewalMs?: number;
  /** Receives the handler's `context.log` calls and the drain loop's own lines. */
  readonly logHandler?: LogHandler;
}

export interface QueueDrainer {
  /** Stops taking messages and waits (up to `graceMs`) for the ones in flight. */
  stop(graceMs?: number): Promise<void>;
}

/** The lock was lost (expired and taken back) before the consumer settled the message. */
export class MessageLockLostError extends Error {
  constructor(messageId: string) {
    super(`The lock on message ${messageId} was lost; it will be delivered again`);
    this.name = "MessageLockLostError";
  }
}

interface StoredMessage {
  readonly messageId: string;
  readonly correlationId?: string;
  readonly applicationProperties: Record<string, string | number | boolean>;
  readonly body: unknown;
  readonly enqueuedTimeUtc: string;
  readonly sequenceNumber: number;
}

interface DeadLetterFile extends StoredMessage {
  readonly deliveryCount: number;
  readonly deadLetterReason: string;
  readonly deadLetterErrorDescription: string;
  readonly deadLetteredTimeUtc: string;
}

interface FileName {
  readonly time: number;
  readonly key: string;
  readonly deliveryCount: number;
}

/** Keeps the lock's file path; the public fields are what a consumer sees. */
interface Lock extends ReceivedMessage {
  path: string;
  lockedUntil: Date;
  readonly key: string;
}

const TIME_DIGITS = 15;
const WRITE_CONCURRENCY = 32;

export function fileName(time: number, key: string, deliveryCount: number): string {
  return `${String(Math.max(0, Math.floor(time))).padStart(TIME_DIGITS, "0")}.${key}.${deliveryCount}.json`;
}

export function parseFileName(name: string): FileName | undefined {
  const match = /^(\d+)\.([0-9a-z]+)\.(\d+)\.json$/.exec(name);
  if (!match) return undefined;
  return { time: Number(match[1]), key: match[2]!, deliveryCount: Number(match[3]) };
}

/** A message file's content; a SyntaxError when it is not one (truncated, corrupt). */
function parseStored(text: string): StoredMessage {
  const value = JSON.parse(text) as unknown;
  const record =
    typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  if (typeof record.messageId !== "string" || typeof record.enqueuedTimeUtc !== "string")
    throw new SyntaxError("not a queue message (no messageId / enqueuedTimeUtc)");
  return value as StoredMessage;
}

/** A message file that exists but cannot be parsed (truncated, corrupt, not JSON). */
function isUnreadable(error: unknown): boolean {
  return error instanceof SyntaxError;
}

/** Writes and fsyncs a file, so the rename that publishes it never exposes a partial one. */
async function writeDurably(path: string, text: string): Promise<void> {
  const handle = await open(path, "w");
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

let sequence = 0;
/** Unique across processes, and sorting in enqueue order within one process. */
export function newKey(): string {
  sequence = (sequence + 1) % 1_000_000;
  return `${Date.now().toString(36)}${sequence.toString(36).padStart(4, "0")}${randomBytes(5).toString("hex")}`;
}

/** Best effort only: increases within a process; Service Bus' is strictly per queue. */
export function newSequenceNumber(): number {
  return Date.now() * 1000 + (sequence % 1000);
}

async function inBatches<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += WRITE_CONCURRENCY) {
    await Promise.all(items.slice(i, i + WRITE_CONCURRENCY).map(work));
  }
}

export class LocalQueue implements QueuePort {
  readonly queueName: string;
  readonly path: string;
  readonly lockDurationMs: number;
  readonly maxDeliveryCount: number;
  readonly #messages: string;
  readonly #locked: string;
  readonly #deadLetter: string;
  readonly #tmp: string;
  readonly #quarantine: string;
  /** Locks this process holds: key -> monotonic expiry (see "Clocks" above). */
  readonly #held = new Map<string, number>();
  readonly #warn: (line: string) => void;
  #ready: Promise<void> | undefined;

  constructor(options: LocalQueueOptions) {
    this.queueName = options.queueName ?? "notifications";
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(this.queueName)) {
      throw new Error(`Invalid local queue name "${this.queueName}"`);
    }
    this.path = join(resolve(options.directory), this.queueName);
    this.lockDurationMs = options.lockDurationMs ?? 60_000;
    this.maxDeliveryCount = options.maxDeliveryCount ?? 10;
    this.#messages = join(this.path, "messages");
    this.#locked = join(this.path, "locked");
    this.#deadLetter = join(this.path, "deadletter");
    this.#tmp = join(this.path, "tmp");
    this.#quarantine = join(this.path, "quarantine");
    this.#warn = options.onWarning ?? ((line) => console.warn(line));
  }

  async enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    const now = Date.now();
    await inBatches(messages, (m) => this.#write(m, now));
  }

  async schedule(message: OutgoingMessage, at: Date): Promise<void> {
    const time = at.getTime();
    if (Number.isNaN(time)) throw new Error("schedule: invalid date");
    await this.#write(message, time);
  }

  /**
   * Takes up to `maxCount` visible messages under a peek-lock, oldest first. Messages that
   * already used every delivery (their consumer died on the last one) go to dead-letter
   * instead, as Service Bus does.
   */
  async receive(maxCount = 1): Promise<ReceivedMessage[]> {
    await this.#ensureFolders();
    await this.recoverExpiredLocks();
    const now = Date.now();
    const visible = (await this.#list(this.#messages))
      .filter((f) => f.parsed.time <= now)
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const taken: ReceivedMessage[] = [];
    for (const file of visible) {
      if (taken.length >= maxCount) break;
      const source = join(this.#messages, file.name);
      if (file.parsed.deliveryCount >= this.maxDeliveryCount) {
        try {
          await this.#deadLetterFrom(source, file.parsed, {
            reason: "MaxDeliveryCountExceeded",
            description: `Message could not be consumed after ${file.parsed.deliveryCount} delivery attempts.`,
          });
        } catch (error) {
          if (!isUnreadable(error)) throw error;
          await this.#quarantineFile(source, file.name, error);
        }
        continue;
      }
      const lockedUntil = Date.now() + this.lockDurationMs;
      const deliveryCount = file.parsed.deliveryCount + 1;
      const target = join(this.#locked, fileName(lockedUntil, file.parsed.key, deliveryCount));
      try {
        await rename(source, target);
      } catch (error) {
        if (isNotFound(error)) continue; // another consumer took it first
        throw error;
      }
      let stored: StoredMessage;
      try {
        stored = parseStored(await readFile(target, "utf8"));
      } catch (error) {
        if (isNotFound(error)) continue; // lock already expired and taken back: not ours now
        if (!isUnreadable(error)) throw error;
        // One bad file must not stop the queue: move it aside and go on with the rest.
        await this.#quarantineFile(target, file.name, error);
        continue;
      }
      this.#held.set(file.parsed.key, performance.now() + this.lockDurationMs);
      const lock: Lock = {
        messageId: stored.messageId,
        correlationId: stored.correlationId,
        applicationProperties: stored.applicationProperties,
        body: stored.body,
        enqueuedTimeUtc: new Date(stored.enqueuedTimeUtc),
        sequenceNumber: stored.sequenceNumber,
        deliveryCount,
        lockToken: `${file.parsed.key}-${deliveryCount}`,
        lockedUntil: new Date(lockedUntil),
        key: file.parsed.key,
        path: target,
      };
      taken.push(lock);
    }
    return taken;
  }

  /** Removes the message: it was handled. */
  async complete(message: ReceivedMessage): Promise<void> {
    const lock = this.#lockOf(message);
    this.#held.delete(lock.key);
    try {
      await unlink(lock.path);
    } catch (error) {
      if (isNotFound(error)) throw new MessageLockLostError(message.messageId);
      throw error;
    }
  }

  /** Releases the lock; the message is visible again after `delayMs`. */
  async abandon(message: ReceivedMessage, delayMs = 0): Promise<void> {
    const lock = this.#lockOf(message);
    this.#held.delete(lock.key);
    const target = join(
      this.#messages,
      fileName(Date.now() + delayMs, lock.key, message.deliveryCount),
    );
    try {
      await rename(lock.path, target);
    } catch (error) {
      if (isNotFound(error)) throw new MessageLockLostError(message.messageId);
      throw error;
    }
  }

  /** Extends the lock by another lock duration (the host's auto-renewal). */
  async renewLock(message: ReceivedMessage): Promise<Date> {
    const lock = this.#lockOf(message);
    const lockedUntil = Date.now() + this.lockDurationMs;
    const target = join(this.#locked, fileName(lockedUntil, lock.key, message.deliveryCount));
    try {
      await rename(lock.path, target);
    } catch (error) {
      if (isNotFound(error)) throw new MessageLockLostError(message.messageId);
      throw error;
    }
    lock.path = target;
    lock.lockedUntil = new Date(lockedUntil);
    this.#held.set(lock.key, performance.now() + this.lockDurationMs);
    return lock.lockedUntil;
  }

  async deadLetter(
    message: ReceivedMessage,
    reason: { reason: string; description: string },
  ): Promise<void> {
    const lock = this.#lockOf(message);
    const moved = await this.#deadLetterFrom(
      lock.path,
      { time: 0, key: lock.key, deliveryCount: message.deliveryCount },
      reason,
    );
    if (!moved) throw new MessageLockLostError(message.messageId);
  }

  /** Returns messages whose consumer let the lock expire (crashed, or hung past renewal). */
  async recoverExpiredLocks(): Promise<number> {
    const now = Date.now();
    const monotonic = performance.now();
    let recovered = 0;
    for (const file of await this.#list(this.#locked)) {
      if (file.parsed.time > now) continue;
      const held = this.#held.get(file.parsed.key);
      if (held !== undefined) {
        if (held > monotonic) continue; // ours and live by the monotonic clock: a wall-clock jump
        this.#held.delete(file.parsed.key);
      }
      try {
        await rename(
          join(this.#locked, file.name),
          join(this.#messages, fileName(now, file.parsed.key, file.parsed.deliveryCount)),
        );
        recovered += 1;
      } catch (error) {
        if (!isNotFound(error)) throw error; // renewed, settled or recovered by someone else
      }
    }
    return recovered;
  }

  async counts(): Promise<QueueCounts> {
    const now = Date.now();
    const waiting = await this.#list(this.#messages);
    const active = waiting.filter((f) => f.parsed.time <= now).length;
    return {
      active,
      scheduled: waiting.length - active,
      locked: (await this.#list(this.#locked)).length,
      deadLettered: (await this.#names(this.#deadLetter)).filter((n) => n.endsWith(".json")).length,
    };
  }

  async deadLetters(): Promise<DeadLetteredMessage[]> {
    const result: DeadLetteredMessage[] = [];
    for (const name of (await this.#names(this.#deadLetter)).sort()) {
      if (!name.endsWith(".json")) continue;
      let file: DeadLetterFile;
      try {
        file = JSON.parse(await readFile(join(this.#deadLetter, name), "utf8")) as DeadLetterFile;
      } catch (error) {
        if (isNotFound(error)) continue;
        throw error;
      }
      result.push({
        messageId: file.messageId,
        correlationId: file.correlationId,
        applicationProperties: file.applicationProperties,
        body: file.body,
        enqueuedTimeUtc: new Date(file.enqueuedTimeUtc),
        deliveryCount: file.deliveryCount,
        deadLetterReason: file.deadLetterReason,
        deadLetterErrorDescription: file.deadLetterErrorDescription,
        deadLetteredTimeUtc: new Date(file.deadLetteredTimeUtc),
      });
    }
    return result;
  }

  // ---- dead-letter tools (`herald dlq`): list with ids, replay, purge ----

  /** The dead letters with the id `herald dlq` names them by (the file's key) and any session id. */
  async deadLetterEntries(): Promise<LocalDeadLetter[]> {
    const entries: LocalDeadLetter[] = [];
    for (const name of (await this.#names(this.#deadLetter)).sort()) {
      if (!name.endsWith(".json")) continue;
      const file = await this.#readDeadLetter(name);
      if (file === undefined) continue;
      entries.push({
        id: name.slice(0, -".json".length),
        messageId: file.messageId,
        correlationId: file.correlationId,
        sessionId: file.sessionId,
        applicationProperties: file.applicationProperties,
        body: file.body,
        enqueuedTimeUtc: new Date(file.enqueuedTimeUtc),
        deliveryCount: file.deliveryCount,
        deadLetterReason: file.deadLetterReason,
        deadLetterErrorDescription: file.deadLetterErrorDescription,
        deadLetteredTimeUtc: new Date(file.deadLetteredTimeUtc),
      });
    }
    return entries;
  }

  /** Removes one dead letter; false when it was not there (already replayed or purged). */
  async removeDeadLetter(id: string): Promise<boolean> {
    if (!/^[0-9a-z.]+$/.test(id)) return false;
    try {
      await unlink(join(this.#deadLetter, `${id}.json`));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async #readDeadLetter(
    name: string,
  ): Promise<(DeadLetterFile & { sessionId?: string }) | undefined> {
    try {
      return JSON.parse(await readFile(join(this.#deadLetter, name), "utf8")) as DeadLetterFile & {
        sessionId?: string;
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Calls `handler` for each message the way the Functions host calls a Service Bus trigger
   * (one message, an `InvocationContext` with the trigger metadata), completes it on success,
   * makes it visible again after `retryDelayMs` on a throw, dead-letters it after
   * `maxDeliveryCount` deliveries, and renews the lock while the handler runs.
   */
  startDraining(handler: ServiceBusQueueHandler, options: DrainOptions): QueueDrainer {
    return new Drainer(this, handler, options);
  }

  /** Where new messages land: the drain loop watches it. */
  get messagesFolder(): string {
    return this.#messages;
  }

  async ensureFolders(): Promise<void> {
    await this.#ensureFolders();
  }

  async #write(message: OutgoingMessage, visibleAt: number): Promise<void> {
    await this.#ensureFolders();
    const key = newKey();
    const stored: StoredMessage = {
      messageId: message.messageId ?? randomUUID(),
      ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
      applicationProperties: { ...message.applicationProperties },
      body: message.body,
      enqueuedTimeUtc: new Date(Math.max(Date.now(), visibleAt)).toISOString(),
      sequenceNumber: newSequenceNumber(),
    };
    const tmp = join(this.#tmp, `${key}.new`);
    await writeDurably(tmp, JSON.stringify(stored));
    await rename(tmp, join(this.#messages, fileName(visibleAt, key, 0)));
  }

  async #read(path: string): Promise<StoredMessage> {
    return JSON.parse(await readFile(path, "utf8")) as StoredMessage;
  }

  /** Writes the dead-letter copy, then removes the source; false when the source was gone. */
  async #deadLetterFrom(
    source: string,
    parsed: FileName,
    reason: { reason: string; description: string },
  ): Promise<boolean> {
    let stored: StoredMessage;
    try {
      stored = await this.#read(source);
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
    const file: DeadLetterFile = {
      ...stored,
      deliveryCount: parsed.deliveryCount,
      deadLetterReason: reason.reason,
      deadLetterErrorDescription: reason.description,
      deadLetteredTimeUtc: new Date().toISOString(),
    };
    const tmp = join(this.#tmp, `${parsed.key}.${randomBytes(4).toString("hex")}.dlq`);
    await writeFile(tmp, JSON.stringify(file, null, 2));
    // Claim the source first, so two consumers dead-lettering the same file cannot both win.
    const claimed = join(this.#tmp, `${parsed.key}.${randomBytes(4).toString("hex")}.source`);
    try {
      await rename(source, claimed);
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      if (isNotFound(error)) return false;
      throw error;
    }
    await rename(tmp, join(this.#deadLetter, `${parsed.key}.json`));
    await unlink(claimed);
    return true;
  }

  #lockOf(message: ReceivedMessage): Lock {
    const lock = message as Lock;
    if (typeof lock.path !== "string" || typeof lock.key !== "string") {
      throw new Error("Not a message received from a LocalQueue");
    }
    return lock;
  }

  async #names(folder: string): Promise<string[]> {
    try {
      return await readdir(folder);
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
  }

  async #list(folder: string): Promise<{ name: string; parsed: FileName }[]> {
    const result: { name: string; parsed: FileName }[] = [];
    for (const name of await this.#names(folder)) {
      const parsed = parseFileName(name);
      if (parsed) result.push({ name, parsed });
    }
    return result;
  }

  async #ensureFolders(): Promise<void> {
    this.#ready ??= (async () => {
      for (const folder of [
        this.#messages,
        this.#locked,
        this.#deadLetter,
        this.#tmp,
        this.#quarantine,
      ]) {
        await mkdir(folder, { recursive: true });
      }
    })();
    try {
      await this.#ready;
    } catch (error) {
      this.#ready = undefined;
      throw error;
    }
  }

  /** Names of the files moved to `quarantine/` because they could not be read. */
  async quarantined(): Promise<string[]> {
    return (await this.#names(this.#quarantine)).sort();
  }

  /** Moves an unreadable message file aside (kept for inspection) and says so. */
  async #quarantineFile(path: string, name: string, error: unknown): Promise<void> {
    const target = join(
      this.#quarantine,
      `${Date.now()}.${randomBytes(4).toString("hex")}.${name}`,
    );
    try {
      await rename(path, target);
    } catch (moveError) {
      if (isNotFound(moveError)) return; // someone else moved or settled it
      throw moveError;
    }
    this.#warn(
      `Local queue ${this.queueName}: quarantined unreadable message file ${name} (${toError(error).message.slice(0, 200)}); it is in ${target}`,
    );
  }

  /** Earliest time a waiting message becomes visible, if any. */
  async nextVisibleAt(): Promise<number | undefined> {
    let earliest: number | undefined;
    for (const file of await this.#list(this.#messages)) {
      if (earliest === undefined || file.parsed.time < earliest) earliest = file.parsed.time;
    }
    for (const file of await this.#list(this.#locked)) {
      if (earliest === undefined || file.parsed.time < earliest) earliest = file.parsed.time;
    }
    return earliest;
  }
}

/** What the Service Bus extension puts in `context.triggerMetadata` (camel-cased by the worker). */
export function serviceBusTriggerMetadata(message: ReceivedMessage): TriggerMetadata {
  return {
    messageId: message.messageId,
    correlationId: message.correlationId,
    deliveryCount: message.deliveryCount,
    enqueuedTimeUtc: message.enqueuedTimeUtc.toISOString(),
    // A local message never expires: Service Bus' default time to live is "forever" too.
    expiresAtUtc: "9999-12-31T23:59:59.999Z",
    lockToken: message.lockToken,
    sequenceNumber: message.sequenceNumber,
    contentType: "application/json",
    applicationProperties: { ...message.applicationProperties },
    // The older name the extension still fills in alongside applicationProperties.
    userProperties: { ...message.applicationProperties },
  };
}

class Drainer implements QueueDrainer {
  readonly #inFlight = new Set<Promise<void>>();
  readonly #maxConcurrent: number;
  readonly #retryDelayMs: number;
  readonly #pollIntervalMs: number;
  readonly #maxRenewalMs: number;
  readonly #log: LogHandler;
  #running = true;
  #wake: (() => void) | undefined;
  /** Set when something happened while the loop was not asleep, so it does not sleep through it. */
  #woken = false;
  #timer: NodeJS.Timeout | undefined;
  #watcher: FSWatcher | undefined;
  readonly #loop: Promise<void>;

  constructor(
    private readonly queue: LocalQueue,
    private readonly handler: ServiceBusQueueHandler,
    private readonly options: DrainOptions,
  ) {
    this.#maxConcurrent = Math.max(1, options.maxConcurrentCalls ?? 16);
    this.#retryDelayMs = options.retryDelayMs ?? 1000;
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.#maxRenewalMs = options.maxAutoLockRenewalMs ?? 5 * 60_000;
    this.#log = options.logHandler ?? defaultLogHandler(options.functionName);
    this.#loop = this.#run();
  }

  async stop(graceMs = 10_000): Promise<void> {
    this.#running = false;
    this.#watcher?.close();
    this.#signal();
    await this.#loop;
    if (this.#inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((done) => {
      timer = setTimeout(() => {
        this.#log(
          "warning",
          `Stopped waiting for ${this.#inFlight.size} message(s) in flight; their locks will expire and they will be delivered again`,
        );
        done();
      }, graceMs);
    });
    await Promise.race([Promise.allSettled([...this.#inFlight]), grace]);
    clearTimeout(timer);
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    if (wake) wake();
    else this.#woken = true;
  }

  async #run(): Promise<void> {
    try {
      await this.queue.ensureFolders();
      try {
        // New files wake the loop at once; the poll timer covers scheduled times and file
        // systems where watching does not work.
        this.#watcher = watch(this.queue.messagesFolder, () => this.#signal());
        this.#watcher.on("error", () => this.#watcher?.close());
      } catch {
        this.#watcher = undefined;
      }
    } catch (error) {
      this.#log(
        "error",
        `Local queue ${this.queue.path} cannot be opened: ${toError(error).message}`,
      );
      return;
    }
    try {
      await this.#loopUntilStopped();
    } finally {
      // stop() may have come before the watcher existed.
      this.#watcher?.close();
    }
  }

  async #loopUntilStopped(): Promise<void> {
    while (this.#running) {
      this.#woken = false;
      let received = 0;
      const free = this.#maxConcurrent - this.#inFlight.size;
      if (free > 0) {
        try {
          const messages = await this.queue.receive(free);
          received = messages.length;
          for (const message of messages) this.#start(message);
        } catch (error) {
          this.#log("error", `Local queue receive failed: ${toError(error).message}`);
        }
      }
      if (!this.#running) break;
      if (received > 0 && received === free) continue; // more may be waiting
      await this.#sleep(free > 0 ? await this.#idleWait() : this.#pollIntervalMs);
    }
  }

  async #idleWait(): Promise<number> {
    const next = await this.queue.nextVisibleAt().catch(() => undefined);
    if (next === undefined) return this.#pollIntervalMs;
    return Math.max(5, Math.min(this.#pollIntervalMs, next - Date.now() + 5));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      if (!this.#running || this.#woken) {
        this.#woken = false;
        return done();
      }
      this.#wake = () => {
        clearTimeout(this.#timer);
        done();
      };
      this.#timer = setTimeout(() => this.#signal(), ms);
    });
  }

  #start(message: ReceivedMessage): void {
    const task = this.#process(message).finally(() => {
      this.#inFlight.delete(task);
      this.#signal(); // a slot is free
    });
    this.#inFlight.add(task);
  }

  async #process(message: ReceivedMessage): Promise<void> {
    const invocationId = randomUUID();
    const context = new InvocationContext({
      invocationId,
      functionName: this.options.functionName,
      triggerMetadata: serviceBusTriggerMetadata(message),
      logHandler: this.#log,
      options: {
        trigger: {
          type: "serviceBusTrigger",
          name: "message",
          queueName: this.queue.queueName,
          connection: "local",
        },
      },
    });
    // Monotonic: a wall-clock jump must not end (or extend) renewal early.
    const renewUntil = performance.now() + this.#maxRenewalMs;
    // Renewals are chained, and awaited before settling, so a rename in progress never races
    // the complete/abandon that follows.
    let renewing: Promise<void> = Promise.resolve();
    const renewal = setInterval(
      () => {
        if (performance.now() > renewUntil) return clearInterval(renewal);
        renewing = renewing
          .then(() => this.queue.renewLock(message))
          .then(
            () => undefined,
            (error: unknown) => {
              clearInterval(renewal);
              this.#log(
                "warning",
                `Lock renewal failed for ${message.messageId}: ${toError(error).message}`,
              );
            },
          );
      },
      Math.max(50, Math.floor(this.queue.lockDurationMs / 2)),
    );
    let failure: Error | undefined;
    try {
      await Promise.resolve(this.handler(message.body, context));
    } catch (error) {
      failure = toError(error);
    } finally {
      clearInterval(renewal);
    }
    await renewing;
    try {
      if (failure === undefined) {
        await this.queue.complete(message);
        return;
      }
      const last = message.deliveryCount >= this.queue.maxDeliveryCount;
      this.#log(
        last ? "error" : "warning",
        `Executed '${this.options.functionName}' (Failed, Id=${invocationId}, MessageId=${message.messageId}, DeliveryCount=${message.deliveryCount}): ${failure.message}` +
          (last ? "; dead-lettered" : `; delivered again in ${this.#retryDelayMs} ms`),
      );
      if (last) {
        await this.queue.deadLetter(message, {
          reason: "MaxDeliveryCountExceeded",
          description: `Message could not be consumed after ${message.deliveryCount} delivery attempts. Last error: ${failure.message}`,
        });
      } else {
        await this.queue.abandon(message, this.#retryDelayMs);
      }
    } catch (error) {
      // Lock lost: someone else has the message now, and it will be delivered again.
      this.#log("warning", `Settling ${message.messageId} failed: ${toError(error).message}`);
    }
  }
}

export function defaultLogHandler(functionName: string): LogHandler {
  return (level, ...args) => {
    const line = `[${new Date().toISOString()}] ${functionName}: ${args.map(String).join(" ")}`;
    if (level === "error" || level === "critical") console.error(line);
    else if (level === "warning") console.warn(line);
    else if (level !== "trace" && level !== "debug") console.log(line);
  };
}
