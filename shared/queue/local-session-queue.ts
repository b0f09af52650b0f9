import { createHash, randomBytes, randomUUID } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { link, mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";

import {
  InvocationContext,
  type LogHandler,
  type ServiceBusQueueHandler,
  type TriggerMetadata,
} from "@azure/functions";

import { toError } from "../errors";
import { DuplicateDetector } from "./duplicate-detection";
import {
  type DeadLetteredMessage,
  defaultLogHandler,
  fileName,
  type LocalDeadLetter,
  newKey,
  newSequenceNumber,
  parseFileName,
  type QueueCounts,
  type QueueDrainer,
  type ReceivedMessage,
  serviceBusTriggerMetadata,
} from "./local-queue";
import type { OutgoingMessage, QueuePort } from "./queue-port";
import { SessionLease } from "./session-lease";

/**
 * A durable, session-enabled queue in a folder, for `npm start`: the contract of a Service Bus
 * queue with `requiresSession` and duplicate detection, without a broker. Every message names
 * a session (Herald: the tenant); a consumer takes a whole session under an expiring lock, so
 * one consumer at a time handles a session's messages, in order, whatever the number of
 * processes (https://learn.microsoft.com/azure/service-bus-messaging/message-sessions).
 *
 * Layout, under `<directory>/<queueName>/`:
 * - `sessions/<slug>-<hash>/`: one session (`slug` is the id's safe characters, `hash` part of
 *   its SHA-256, so any id of up to 128 characters gets a short, unique folder), with
 *   - `session.json`: the session id;
 *   - `messages/<visibleAtMs>.<key>.<deliveryCount>.json`, `locked/<lockedUntilMs>.<key>.<deliveryCount>.json`,
 *     `deadletter/<key>.json`, `tmp/`: the messages, named and moved as in `LocalQueue`
 *     (every state change one atomic rename); visible messages are taken in `key` order,
 *     which is enqueue order, as Service Bus takes a session's messages by sequence number;
 *   - `lock/<generation>.json`: the session lock (`session-lease.ts`).
 * - `dedupe/`: duplicate detection by message id (`duplicate-detection.ts`).
 * Only the session's holder locks its messages, so a consumer that takes a session moves every
 * message still under `locked/` back (its previous holder died or lost the session): the
 * session lock is the message lock, as on Service Bus.
 */
export interface LocalSessionQueueOptions {
  /** Root folder (`LocalQueueDirectory`); the queue lives in `<directory>/<queueName>`. */
  readonly directory: string;
  readonly queueName?: string;
  /** The session lock's duration; Service Bus' default lock duration is one minute. */
  readonly lockDurationMs?: number;
  /** Service Bus' default MaxDeliveryCount is 10. */
  readonly maxDeliveryCount?: number;
  /** Service Bus' default duplicate detection window is ten minutes. */
  readonly duplicateDetectionWindowMs?: number;
}

export interface SessionDrainOptions {
  /** Becomes `context.functionName`. */
  readonly functionName: string;
  /** As host.json `extensions.serviceBus.maxConcurrentSessions` (default 8). */
  readonly maxConcurrentSessions?: number;
  /** As host.json `extensions.serviceBus.maxConcurrentCallsPerSession` (default 1). */
  readonly maxConcurrentCallsPerSession?: number;
  /** As host.json `sessionIdleTimeout`: a session without a visible message this long is released. */
  readonly sessionIdleTimeoutMs?: number;
  /** How long a failed message waits before it is visible again. */
  readonly retryDelayMs?: number;
  /** Longest wait between looks at the folders; new files also wake the loop at once. */
  readonly pollIntervalMs?: number;
  /** As host.json `maxAutoLockRenewalDuration`: one call longer than this loses the session. */
  readonly maxAutoLockRenewalMs?: number;
  /** Receives the handler's `context.log` calls and the drain loop's own lines. */
  readonly logHandler?: LogHandler;
}

export interface SessionReceivedMessage extends ReceivedMessage {
  readonly sessionId: string;
}

export interface SessionDeadLetteredMessage extends DeadLetteredMessage {
  readonly sessionId: string;
}

export interface SessionQueueCounts extends QueueCounts {
  /** Sessions with at least one message waiting, scheduled or locked. */
  readonly sessions: number;
}

/** Service Bus' limit on a session id. */
export const MAX_SESSION_ID_LENGTH = 128;

interface StoredMessage {
  readonly messageId: string;
  readonly correlationId?: string;
  readonly sessionId: string;
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

interface Listed {
  readonly name: string;
  readonly time: number;
  readonly key: string;
  readonly deliveryCount: number;
}

interface Taken extends SessionReceivedMessage {
  readonly path: string;
  readonly key: string;
}

interface TakeResult {
  readonly taken: Taken[];
  /** Visible messages left behind (the caller asked for fewer). */
  readonly moreVisible: boolean;
  /** Earliest time a waiting, not yet visible message becomes visible. */
  readonly nextVisibleAtMs: number | undefined;
}

interface SessionSummary {
  readonly visible: number;
  readonly waiting: number;
  readonly locked: number;
  readonly nextVisibleAtMs: number | undefined;
}

const WRITE_CONCURRENCY = 32;

interface Outgoing {
  readonly message: OutgoingMessage;
  readonly sessionId: string;
  readonly key: string;
  readonly visibleAtMs: number;
}

/** Written to the session's `tmp/`, not yet a message. */
interface Prepared {
  readonly folder: SessionFolder;
  readonly tmp: string;
  readonly key: string;
  readonly visibleAtMs: number;
  readonly messageId: string;
  /** Recorded by duplicate detection (the sender gave the id). */
  readonly checked: boolean;
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

function isExists(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "EEXIST";
}

async function namesIn(folder: string): Promise<string[]> {
  try {
    return await readdir(folder);
  } catch (error) {
    if (isNotFound(error)) return [];
    throw error;
  }
}

async function listMessages(folder: string): Promise<Listed[]> {
  const result: Listed[] = [];
  for (const name of await namesIn(folder)) {
    const parsed = parseFileName(name);
    if (parsed) result.push({ name, ...parsed });
  }
  return result;
}

/** The folder name of a session: readable, and unique for any id. */
export function sessionFolderName(sessionId: string): string {
  const slug = sessionId.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40);
  const hash = createHash("sha256").update(sessionId).digest("hex").slice(0, 16);
  return `${slug}-${hash}`;
}

/** Refuses what Service Bus refuses on a session-enabled queue. */
function checkSessionId(message: OutgoingMessage): string {
  const { sessionId } = message;
  if (sessionId === undefined || sessionId === "") {
    throw new Error(
      `Message ${message.messageId ?? "(no id)"} has no sessionId: the session-enabled queue requires one (the tenant)`,
    );
  }
  if (sessionId.length > MAX_SESSION_ID_LENGTH) {
    throw new Error(
      `Message ${message.messageId ?? "(no id)"} has a sessionId of ${sessionId.length} characters; at most ${MAX_SESSION_ID_LENGTH} are allowed`,
    );
  }
  return sessionId;
}

/** One session's folder: its messages and their moves. */
class SessionFolder {
  readonly path: string;
  readonly messages: string;
  readonly locked: string;
  readonly deadLetter: string;
  readonly tmp: string;
  readonly lock: string;

  constructor(
    readonly name: string,
    sessionsRoot: string,
  ) {
    this.path = join(sessionsRoot, name);
    this.messages = join(this.path, "messages");
    this.locked = join(this.path, "locked");
    this.deadLetter = join(this.path, "deadletter");
    this.tmp = join(this.path, "tmp");
    this.lock = join(this.path, "lock");
  }

  /** Creates the folders and `session.json`, once per session (any process may be first). */
  async create(sessionId: string): Promise<void> {
    for (const folder of [this.messages, this.locked, this.deadLetter, this.tmp, this.lock]) {
      await mkdir(folder, { recursive: true });
    }
    const tmp = join(this.tmp, `${randomBytes(6).toString("hex")}.session`);
    await writeFile(tmp, JSON.stringify({ sessionId }));
    try {
      await link(tmp, join(this.path, "session.json"));
    } catch (error) {
      if (!isExists(error)) throw error;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  async sessionId(): Promise<string | undefined> {
    try {
      const file = JSON.parse(await readFile(join(this.path, "session.json"), "utf8")) as {
        sessionId: string;
      };
      return file.sessionId;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Writes the message where no consumer looks; `publish` makes it a message. */
  async prepare(stored: StoredMessage, key: string): Promise<string> {
    const tmp = join(this.tmp, `${key}.new`);
    await writeFile(tmp, JSON.stringify(stored));
    return tmp;
  }

  async publish(tmp: string, key: string, visibleAtMs: number): Promise<void> {
    await rename(tmp, join(this.messages, fileName(visibleAtMs, key, 0)));
  }

  async summary(nowMs: number): Promise<SessionSummary> {
    const waiting = await listMessages(this.messages);
    let visible = 0;
    let nextVisibleAtMs: number | undefined;
    for (const file of waiting) {
      if (file.time <= nowMs) visible += 1;
      else if (nextVisibleAtMs === undefined || file.time < nextVisibleAtMs) {
        nextVisibleAtMs = file.time;
      }
    }
    const locked = (await listMessages(this.locked)).length;
    return { visible, waiting: waiting.length, locked, nextVisibleAtMs };
  }

  /**
   * Locks up to `maxCount` visible messages in enqueue order. A message that already used
   * every delivery (its consumer died on the last one) is dead-lettered instead, as Service
   * Bus does.
   */
  async take(
    maxCount: number,
    lockedUntilMs: number,
    maxDeliveryCount: number,
  ): Promise<TakeResult> {
    const now = Date.now();
    const waiting = await listMessages(this.messages);
    let nextVisibleAtMs: number | undefined;
    const visible: Listed[] = [];
    for (const file of waiting) {
      if (file.time <= now) visible.push(file);
      else if (nextVisibleAtMs === undefined || file.time < nextVisibleAtMs) {
        nextVisibleAtMs = file.time;
      }
    }
    visible.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const taken: Taken[] = [];
    let index = 0;
    for (; index < visible.length && taken.length < maxCount; index += 1) {
      const file = visible[index]!;
      const source = join(this.messages, file.name);
      if (file.deliveryCount >= maxDeliveryCount) {
        await this.deadLetterFrom(source, file.key, file.deliveryCount, {
          reason: "MaxDeliveryCountExceeded",
          description: `Message could not be consumed after ${file.deliveryCount} delivery attempts.`,
        });
        continue;
      }
      const deliveryCount = file.deliveryCount + 1;
      // The rename that takes the message also counts the delivery, so a consumer killed
      // mid-message still counted it.
      const target = join(this.locked, fileName(lockedUntilMs, file.key, deliveryCount));
      try {
        await rename(source, target);
      } catch (error) {
        if (isNotFound(error)) continue; // settled by a previous holder that lost the session late
        throw error;
      }
      const stored = JSON.parse(await readFile(target, "utf8")) as StoredMessage;
      taken.push({
        messageId: stored.messageId,
        correlationId: stored.correlationId,
        sessionId: stored.sessionId,
        applicationProperties: stored.applicationProperties,
        body: stored.body,
        enqueuedTimeUtc: new Date(stored.enqueuedTimeUtc),
        sequenceNumber: stored.sequenceNumber,
        deliveryCount,
        lockToken: `${file.key}-${deliveryCount}`,
        lockedUntil: new Date(lockedUntilMs),
        key: file.key,
        path: target,
      });
    }
    return { taken, moreVisible: index < visible.length, nextVisibleAtMs };
  }

  /** Moves every locked message back to visible, delivery count kept: the new holder's first step. */
  async recoverLocked(): Promise<number> {
    const now = Date.now();
    let recovered = 0;
    for (const file of await listMessages(this.locked)) {
      try {
        await rename(
          join(this.locked, file.name),
          join(this.messages, fileName(now, file.key, file.deliveryCount)),
        );
        recovered += 1;
      } catch (error) {
        if (!isNotFound(error)) throw error; // settled meanwhile by the holder that lost it
      }
    }
    return recovered;
  }

  /** False when the message was not under lock any more (the session was lost and taken). */
  async complete(message: Taken): Promise<boolean> {
    try {
      await unlink(message.path);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async abandon(message: Taken, delayMs: number): Promise<boolean> {
    const target = join(
      this.messages,
      fileName(Date.now() + delayMs, message.key, message.deliveryCount),
    );
    try {
      await rename(message.path, target);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** Writes the dead-letter copy, then removes the source; false when the source was gone. */
  async deadLetterFrom(
    source: string,
    key: string,
    deliveryCount: number,
    reason: { reason: string; description: string },
  ): Promise<boolean> {
    let stored: StoredMessage;
    try {
      stored = JSON.parse(await readFile(source, "utf8")) as StoredMessage;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
    const file: DeadLetterFile = {
      ...stored,
      deliveryCount,
      deadLetterReason: reason.reason,
      deadLetterErrorDescription: reason.description,
      deadLetteredTimeUtc: new Date().toISOString(),
    };
    const tmp = join(this.tmp, `${key}.${randomBytes(4).toString("hex")}.dlq`);
    await writeFile(tmp, JSON.stringify(file, null, 2));
    // Claim the source first, so that a settle racing this one cannot both win.
    const claimed = join(this.tmp, `${key}.${randomBytes(4).toString("hex")}.source`);
    try {
      await rename(source, claimed);
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      if (isNotFound(error)) return false;
      throw error;
    }
    await rename(tmp, join(this.deadLetter, `${key}.json`));
    await unlink(claimed);
    return true;
  }

  /** The folder's dead letters, each with its file key (what `herald dlq` names it by). */
  async deadLetters(sessionId: string): Promise<(SessionDeadLetteredMessage & { key: string })[]> {
    const result: (SessionDeadLetteredMessage & { key: string })[] = [];
    for (const name of (await namesIn(this.deadLetter)).sort()) {
      if (!name.endsWith(".json")) continue;
      let file: DeadLetterFile;
      try {
        file = JSON.parse(await readFile(join(this.deadLetter, name), "utf8")) as DeadLetterFile;
      } catch (error) {
        if (isNotFound(error)) continue;
        throw error;
      }
      result.push({
        key: name.slice(0, -".json".length),
        messageId: file.messageId,
        correlationId: file.correlationId,
        sessionId: file.sessionId ?? sessionId,
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
}

export class LocalSessionQueue implements QueuePort {
  readonly queueName: string;
  readonly path: string;
  readonly lockDurationMs: number;
  readonly maxDeliveryCount: number;
  /** Where the session folders are: the drain loop watches it for new sessions. */
  readonly sessionsFolder: string;
  readonly #duplicates: DuplicateDetector;
  /** Sessions this process already created the folders of. */
  readonly #created = new Map<string, Promise<void>>();

  constructor(options: LocalSessionQueueOptions) {
    this.queueName = options.queueName ?? "herald-work";
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(this.queueName)) {
      throw new Error(`Invalid local queue name "${this.queueName}"`);
    }
    this.path = join(resolve(options.directory), this.queueName);
    this.lockDurationMs = options.lockDurationMs ?? 60_000;
    this.maxDeliveryCount = options.maxDeliveryCount ?? 10;
    this.sessionsFolder = join(this.path, "sessions");
    this.#duplicates = new DuplicateDetector({
      directory: join(this.path, "dedupe"),
      windowMs: options.duplicateDetectionWindowMs ?? 600_000,
    });
  }

  /** Sends now. Refuses the whole batch, before writing any, if one message has no valid session. */
  async enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    const sessions = messages.map(checkSessionId);
    const now = Date.now();
    // Keys in the batch's order before any write starts: the key is the session's order.
    const keyed = messages.map((message, i) => ({
      message,
      sessionId: sessions[i]!,
      key: newKey(),
      visibleAtMs: now,
    }));
    for (let i = 0; i < keyed.length; i += WRITE_CONCURRENCY) {
      await this.#send(keyed.slice(i, i + WRITE_CONCURRENCY));
    }
  }

  async schedule(message: OutgoingMessage, at: Date): Promise<void> {
    const sessionId = checkSessionId(message);
    const time = at.getTime();
    if (Number.isNaN(time)) throw new Error("schedule: invalid date");
    await this.#send([{ message, sessionId, key: newKey(), visibleAtMs: time }]);
  }

  async counts(): Promise<SessionQueueCounts> {
    const now = Date.now();
    let active = 0;
    let scheduled = 0;
    let locked = 0;
    let deadLettered = 0;
    let sessions = 0;
    for (const folder of await this.sessionFolders()) {
      const summary = await folder.summary(now);
      active += summary.visible;
      scheduled += summary.waiting - summary.visible;
      locked += summary.locked;
      deadLettered += (await namesIn(folder.deadLetter)).filter((n) => n.endsWith(".json")).length;
      if (summary.waiting + summary.locked > 0) sessions += 1;
    }
    return { active, scheduled, locked, deadLettered, sessions };
  }

  /** Dead letters as `herald dlq` names them: `<session folder>/<file key>`. */
  async deadLetterEntries(): Promise<LocalDeadLetter[]> {
    const entries: LocalDeadLetter[] = [];
    for (const folder of await this.sessionFolders()) {
      const sessionId = (await folder.sessionId()) ?? folder.name;
      for (const { key, ...letter } of await folder.deadLetters(sessionId))
        entries.push({ ...letter, id: `${folder.name}/${key}` });
    }
    return entries.sort((a, b) => a.enqueuedTimeUtc.getTime() - b.enqueuedTimeUtc.getTime());
  }

  /** Removes one dead letter (`herald dlq purge`, or after a replay); false when it is gone. */
  async removeDeadLetter(id: string): Promise<boolean> {
    const match = /^([A-Za-z0-9._-]+)\/([0-9a-z.]+)$/.exec(id);
    if (!match) return false;
    try {
      await unlink(join(this.folderOf(match[1]!).deadLetter, `${match[2]!}.json`));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async deadLetters(): Promise<SessionDeadLetteredMessage[]> {
    const result: SessionDeadLetteredMessage[] = [];
    for (const folder of await this.sessionFolders()) {
      const sessionId = (await folder.sessionId()) ?? folder.name;
      for (const { key: _key, ...letter } of await folder.deadLetters(sessionId))
        result.push(letter);
    }
    return result.sort((a, b) => a.enqueuedTimeUtc.getTime() - b.enqueuedTimeUtc.getTime());
  }

  /**
   * Calls `handler` the way the Functions host calls a session-enabled Service Bus trigger:
   * up to `maxConcurrentSessions` sessions held at once, up to `maxConcurrentCallsPerSession`
   * calls in each, trigger metadata with `sessionId`; completes on success, makes the message
   * visible again after `retryDelayMs` on a throw, dead-letters it after `maxDeliveryCount`
   * deliveries, renews the session lock while it holds the session, and releases a session
   * that had no visible message for `sessionIdleTimeoutMs`.
   */
  startDraining(handler: ServiceBusQueueHandler, options: SessionDrainOptions): QueueDrainer {
    return new SessionDrainer(this, handler, options);
  }

  /** Every session folder that exists, for the drain loop and tools. */
  async sessionFolders(): Promise<SessionFolder[]> {
    return (await namesIn(this.sessionsFolder)).map(
      (name) => new SessionFolder(name, this.sessionsFolder),
    );
  }

  folderOf(name: string): SessionFolder {
    return new SessionFolder(name, this.sessionsFolder);
  }

  async ensureFolders(): Promise<void> {
    await mkdir(this.sessionsFolder, { recursive: true });
  }

  /**
   * Writes the messages side by side, then makes each session's visible one after another in
   * key order: a consumer listing the session meanwhile must never see a later message
   * without the earlier ones, or it would take them out of order.
   */
  async #send(items: readonly Outgoing[]): Promise<void> {
    const settled = await Promise.allSettled(items.map((item) => this.#prepare(item)));
    const prepared = settled.flatMap((r) => (r.status === "fulfilled" && r.value ? [r.value] : []));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      await Promise.all(prepared.map((p) => this.#unprepare(p)));
      throw toError(failed.reason);
    }
    const bySession = new Map<string, Prepared[]>();
    for (const p of prepared) {
      const list = bySession.get(p.folder.name) ?? [];
      list.push(p);
      bySession.set(p.folder.name, list);
    }
    await Promise.all(
      [...bySession.values()].map(async (list) => {
        for (let i = 0; i < list.length; i += 1) {
          const p = list[i]!;
          try {
            await p.folder.publish(p.tmp, p.key, p.visibleAtMs);
          } catch (error) {
            await Promise.all(list.slice(i).map((rest) => this.#unprepare(rest)));
            throw error;
          }
          if (p.checked) await this.#duplicates.confirm(p.messageId);
        }
      }),
    );
  }

  /** Undefined: a duplicate within the window, dropped. */
  async #prepare(item: Outgoing): Promise<Prepared | undefined> {
    const { message, sessionId, key, visibleAtMs } = item;
    const messageId = message.messageId ?? randomUUID();
    // A generated id cannot repeat: only a sender's own id needs the check.
    const checked = message.messageId !== undefined;
    if (checked && !(await this.#duplicates.accept(messageId))) return undefined;
    const folder = this.folderOf(sessionFolderName(sessionId));
    try {
      await this.#createOnce(folder, sessionId);
      const tmp = await folder.prepare(
        {
          messageId,
          ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
          sessionId,
          applicationProperties: { ...message.applicationProperties },
          body: message.body,
          enqueuedTimeUtc: new Date(Math.max(Date.now(), visibleAtMs)).toISOString(),
          sequenceNumber: newSequenceNumber(),
        },
        key,
      );
      return { folder, tmp, key, visibleAtMs, messageId, checked };
    } catch (error) {
      if (checked) await this.#duplicates.forget(messageId);
      throw error;
    }
  }

  /** Not sent after all: the sender's retry must not be dropped as a duplicate. */
  async #unprepare(p: Prepared): Promise<void> {
    await unlink(p.tmp).catch(() => undefined); // may not have been written
    if (p.checked) await this.#duplicates.forget(p.messageId);
  }

  async #createOnce(folder: SessionFolder, sessionId: string): Promise<void> {
    let created = this.#created.get(folder.name);
    if (created === undefined) {
      created = folder.create(sessionId);
      this.#created.set(folder.name, created);
    }
    try {
      await created;
    } catch (error) {
      this.#created.delete(folder.name);
      throw error;
    }
  }
}

/** What the Service Bus extension puts in `context.triggerMetadata` for a session message. */
export function sessionTriggerMetadata(message: SessionReceivedMessage): TriggerMetadata {
  return { ...serviceBusTriggerMetadata(message), sessionId: message.sessionId };
}

interface HeldSession {
  readonly folder: SessionFolder;
  readonly lease: SessionLease;
  readonly inFlight: Map<Promise<void>, number>;
  readonly renewal: NodeJS.Timeout;
  /** Last time the session had a visible message or a call in flight. */
  lastActiveMs: number;
  nextVisibleAtMs: number | undefined;
  moreVisible: boolean;
}

/** What this consumer knows of a session it does not hold, to avoid looking at it for nothing. */
interface OtherSession {
  /** Held by another consumer until then (as far as its lock said). */
  busyUntilMs: number;
  /** Nothing visible: look again then (a watch event on its messages looks sooner). */
  recheckAtMs: number;
}

class SessionDrainer implements QueueDrainer {
  readonly #held = new Map<string, HeldSession>();
  readonly #others = new Map<string, OtherSession>();
  readonly #watchers = new Map<string, FSWatcher>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #owner = `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
  readonly #maxSessions: number;
  readonly #maxCallsPerSession: number;
  readonly #idleTimeoutMs: number;
  readonly #retryDelayMs: number;
  readonly #pollIntervalMs: number;
  readonly #maxRenewalMs: number;
  readonly #log: LogHandler;
  #running = true;
  #wake: (() => void) | undefined;
  /** Set when something happened while the loop was not asleep, so it does not sleep through it. */
  #woken = false;
  #timer: NodeJS.Timeout | undefined;
  #rootWatcher: FSWatcher | undefined;
  #discoveryRequested = true;
  #lastDiscoveryMs = 0;
  readonly #loop: Promise<void>;

  constructor(
    private readonly queue: LocalSessionQueue,
    private readonly handler: ServiceBusQueueHandler,
    private readonly options: SessionDrainOptions,
  ) {
    this.#maxSessions = Math.max(1, options.maxConcurrentSessions ?? 8);
    this.#maxCallsPerSession = Math.max(1, options.maxConcurrentCallsPerSession ?? 1);
    this.#idleTimeoutMs = Math.max(0, options.sessionIdleTimeoutMs ?? 5_000);
    this.#retryDelayMs = options.retryDelayMs ?? 1000;
    this.#pollIntervalMs = Math.max(5, options.pollIntervalMs ?? 1000);
    this.#maxRenewalMs = options.maxAutoLockRenewalMs ?? 5 * 60_000;
    this.#log = options.logHandler ?? defaultLogHandler(options.functionName);
    this.#loop = this.#run();
  }

  async stop(graceMs = 10_000): Promise<void> {
    this.#running = false;
    this.#closeWatchers();
    this.#signal();
    await this.#loop;
    if (this.#inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((done) => {
        timer = setTimeout(done, graceMs);
      });
      await Promise.race([Promise.allSettled([...this.#inFlight]), grace]);
      clearTimeout(timer);
    }
    for (const [name, held] of this.#held) {
      clearInterval(held.renewal);
      if (held.inFlight.size > 0) {
        // Releasing would let another consumer run the session beside the calls still here.
        held.lease.abandon();
        this.#log(
          "warning",
          `Stopped waiting for ${held.inFlight.size} message(s) of session ${name}; its lock will expire and they will be delivered again`,
        );
        continue;
      }
      await held.lease
        .release()
        .catch((error: unknown) =>
          this.#log("warning", `Releasing session ${name} failed: ${toError(error).message}`),
        );
    }
    this.#held.clear();
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
      this.#rootWatcher = this.#watch(this.queue.sessionsFolder, () => this.#requestDiscovery());
      await this.#loopUntilStopped();
    } catch (error) {
      this.#log(
        "error",
        `Local session queue ${this.queue.path} failed: ${toError(error).message}`,
      );
    } finally {
      // stop() may have come before the watchers existed.
      this.#closeWatchers();
    }
  }

  async #loopUntilStopped(): Promise<void> {
    while (this.#running) {
      this.#woken = false;
      let busy = false;
      for (const [name, held] of [...this.#held]) {
        try {
          busy = (await this.#serve(name, held)) || busy;
        } catch (error) {
          this.#log("error", `Local session ${name} receive failed: ${toError(error).message}`);
        }
        if (!this.#running) return;
      }
      const now = Date.now();
      if (
        this.#held.size < this.#maxSessions &&
        (this.#discoveryRequested || now - this.#lastDiscoveryMs >= this.#pollIntervalMs)
      ) {
        try {
          await this.#discover();
        } catch (error) {
          this.#log("error", `Local session discovery failed: ${toError(error).message}`);
        }
        if (!this.#running) return;
        busy = busy || this.#heldNeedsService();
      }
      if (busy) continue; // more visible messages and free slots: no sleep
      await this.#sleep(this.#idleWait());
    }
  }

  /** Fills the session's free call slots; true when visible messages were left for free slots. */
  async #serve(name: string, held: HeldSession): Promise<boolean> {
    const now = Date.now();
    if (!held.lease.holds(now)) {
      this.#drop(name, held, "its lock expired or was taken over");
      return false;
    }
    const free = this.#maxCallsPerSession - held.inFlight.size;
    if (free > 0) {
      const result = await held.folder.take(
        free,
        held.lease.expiresAtMs,
        this.queue.maxDeliveryCount,
      );
      held.nextVisibleAtMs = result.nextVisibleAtMs;
      held.moreVisible = result.moreVisible;
      if (!held.lease.holds()) {
        // Lost while taking (a stall): the messages stay locked for the next holder to recover.
        this.#drop(name, held, "its lock expired while receiving");
        return false;
      }
      for (const message of result.taken) this.#start(held, message);
      if (result.taken.length > 0 || result.moreVisible) held.lastActiveMs = Date.now();
    }
    if (held.inFlight.size > 0) {
      held.lastActiveMs = Date.now();
      return false;
    }
    if (Date.now() - held.lastActiveMs >= this.#idleTimeoutMs) {
      clearInterval(held.renewal);
      this.#held.delete(name);
      await held.lease.release();
      // Another consumer (or this one) takes it again when a message is visible. Looked at again
      // by the poll interval at the latest: a message sent meanwhile may come before the
      // scheduled one, and a missed file-system event must not leave it waiting until then.
      this.#others.set(name, {
        busyUntilMs: 0,
        recheckAtMs: Math.min(held.nextVisibleAtMs ?? 0, Date.now() + this.#pollIntervalMs),
      });
      return false;
    }
    return held.moreVisible && held.inFlight.size < this.#maxCallsPerSession;
  }

  #heldNeedsService(): boolean {
    for (const held of this.#held.values()) {
      if (held.inFlight.size < this.#maxCallsPerSession && held.moreVisible) return true;
    }
    return false;
  }

  /** Stops serving a session whose lock is gone, without releasing what is not ours. */
  #drop(name: string, held: HeldSession, why: string): void {
    clearInterval(held.renewal);
    held.lease.abandon();
    this.#held.delete(name);
    this.#others.set(name, { busyUntilMs: 0, recheckAtMs: 0 });
    this.#log("warning", `Session ${name} lost: ${why}`);
  }

  /** Takes free sessions that have something to do, up to the session limit. */
  async #discover(): Promise<void> {
    this.#discoveryRequested = false;
    this.#lastDiscoveryMs = Date.now();
    const folders = await this.queue.sessionFolders();
    // Start at a random place, so that consumers looking at once do not all race for the first.
    const offset = folders.length > 0 ? Math.floor(Math.random() * folders.length) : 0;
    for (let i = 0; i < folders.length && this.#held.size < this.#maxSessions; i += 1) {
      const folder = folders[(offset + i) % folders.length]!;
      if (this.#held.has(folder.name)) continue;
      this.#watchSession(folder);
      const now = Date.now();
      const known = this.#others.get(folder.name);
      if (known !== undefined && (now < known.busyUntilMs || now < known.recheckAtMs)) continue;
      const summary = await folder.summary(now);
      // Locked messages in a session nobody holds are a dead holder's: taking it recovers them.
      if (summary.visible === 0 && summary.locked === 0) {
        this.#others.set(folder.name, {
          busyUntilMs: 0,
          recheckAtMs: Math.min(summary.nextVisibleAtMs ?? Infinity, now + this.#pollIntervalMs),
        });
        continue;
      }
      const result = await SessionLease.tryAcquire(
        folder.lock,
        this.#owner,
        this.queue.lockDurationMs,
      );
      if (result.kind === "busy") {
        // The holder may release it before then (idle); look again at the poll interval.
        this.#others.set(folder.name, {
          busyUntilMs: Math.min(result.untilMs, now + this.#pollIntervalMs),
          recheckAtMs: 0,
        });
        continue;
      }
      this.#others.delete(folder.name);
      const recovered = await folder.recoverLocked();
      if (recovered > 0) {
        this.#log(
          "warning",
          `Session ${folder.name}: ${recovered} message(s) of a previous holder delivered again`,
        );
      }
      this.#hold(folder, result.lease);
    }
  }

  #hold(folder: SessionFolder, lease: SessionLease): void {
    const held: HeldSession = {
      folder,
      lease,
      inFlight: new Map(),
      renewal: setInterval(
        () => this.#renew(folder.name, held),
        Math.max(50, Math.floor(this.queue.lockDurationMs / 3)),
      ),
      lastActiveMs: Date.now(),
      nextVisibleAtMs: undefined,
      moreVisible: true,
    };
    this.#held.set(folder.name, held);
  }

  #renew(name: string, held: HeldSession): void {
    const now = Date.now();
    for (const startedMs of held.inFlight.values()) {
      if (now - startedMs > this.#maxRenewalMs) {
        // A call this long is hung, as the host sees it: the session goes to another consumer.
        clearInterval(held.renewal);
        this.#log(
          "warning",
          `Session ${name}: a call ran past maxAutoLockRenewalMs; the lock is no longer renewed`,
        );
        return;
      }
    }
    held.lease.renew().then(
      (renewed) => {
        if (!renewed) this.#signal(); // the loop drops it
      },
      (error: unknown) => {
        this.#log("warning", `Session ${name} lock renewal failed: ${toError(error).message}`);
      },
    );
  }

  #start(held: HeldSession, message: Taken): void {
    const task = this.#process(held, message).finally(() => {
      held.inFlight.delete(task);
      this.#inFlight.delete(task);
      this.#signal(); // a slot is free
    });
    held.inFlight.set(task, Date.now());
    this.#inFlight.add(task);
  }

  async #process(held: HeldSession, message: Taken): Promise<void> {
    const invocationId = randomUUID();
    const context = new InvocationContext({
      invocationId,
      functionName: this.options.functionName,
      triggerMetadata: sessionTriggerMetadata(message),
      logHandler: this.#log,
      options: {
        trigger: {
          type: "serviceBusTrigger",
          name: "message",
          queueName: this.queue.queueName,
          connection: "local",
          isSessionsEnabled: true,
        },
      },
    });
    let failure: Error | undefined;
    try {
      await Promise.resolve(this.handler(message.body, context));
    } catch (error) {
      failure = toError(error);
    }
    try {
      if (!held.lease.holds()) {
        this.#log(
          "warning",
          `Settling ${message.messageId} skipped: session ${held.folder.name} was lost; it will be delivered again`,
        );
        return;
      }
      if (failure === undefined) {
        await held.folder.complete(message);
        return;
      }
      const last = message.deliveryCount >= this.queue.maxDeliveryCount;
      this.#log(
        last ? "error" : "warning",
        `Executed '${this.options.functionName}' (Failed, Id=${invocationId}, MessageId=${message.messageId}, SessionId=${message.sessionId}, DeliveryCount=${message.deliveryCount}): ${failure.message}` +
          (last ? "; dead-lettered" : `; delivered again in ${this.#retryDelayMs} ms`),
      );
      if (last) {
        await held.folder.deadLetterFrom(message.path, message.key, message.deliveryCount, {
          reason: "MaxDeliveryCountExceeded",
          description: `Message could not be consumed after ${message.deliveryCount} delivery attempts. Last error: ${failure.message}`,
        });
      } else {
        await held.folder.abandon(message, this.#retryDelayMs);
      }
    } catch (error) {
      this.#log("warning", `Settling ${message.messageId} failed: ${toError(error).message}`);
    }
  }

  #idleWait(): number {
    const now = Date.now();
    let until = this.#lastDiscoveryMs + this.#pollIntervalMs;
    for (const held of this.#held.values()) {
      if (held.nextVisibleAtMs !== undefined) until = Math.min(until, held.nextVisibleAtMs);
      if (held.inFlight.size === 0)
        until = Math.min(until, held.lastActiveMs + this.#idleTimeoutMs);
    }
    if (this.#held.size < this.#maxSessions) {
      for (const other of this.#others.values()) {
        const due = Math.max(other.busyUntilMs, other.recheckAtMs);
        if (due > now) until = Math.min(until, due);
      }
    }
    return Math.max(5, Math.min(this.#pollIntervalMs, until - now + 2));
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

  #requestDiscovery(): void {
    this.#discoveryRequested = true;
    if (this.#held.size < this.#maxSessions) this.#signal();
  }

  /** New messages in a session wake the loop: to serve it if held, to try to take it if not. */
  #watchSession(folder: SessionFolder): void {
    if (this.#watchers.has(folder.name)) return;
    const watcher = this.#watch(folder.messages, () => {
      if (this.#held.has(folder.name)) return this.#signal();
      const known = this.#others.get(folder.name);
      if (known !== undefined) known.recheckAtMs = 0;
      this.#requestDiscovery();
    });
    if (watcher !== undefined) this.#watchers.set(folder.name, watcher);
  }

  /** Watching is an optimisation: the poll interval covers file systems where it fails. */
  #watch(path: string, onChange: () => void): FSWatcher | undefined {
    if (!this.#running) return undefined;
    try {
      const watcher = watch(path, onChange);
      watcher.on("error", () => watcher.close());
      return watcher;
    } catch {
      return undefined; // e.g. the folder is not there yet: polling finds it
    }
  }

  #closeWatchers(): void {
    this.#rootWatcher?.close();
    this.#rootWatcher = undefined;
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }
}
