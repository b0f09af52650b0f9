import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";

import { z } from "zod";

import { HeraldError, toError } from "../errors";
import { BrokerDatabase, OWNER, type Params } from "./local-broker";
import { MAX_MESSAGE_BYTES, MAX_SESSION_ID_LENGTH, type OutgoingMessage } from "./queue-port";

/**
 * A queue of the local broker (`local-broker.ts`) with the Service Bus contract Herald relies
 * on: peek-lock with renewal, delivery count, abandon with a delay, scheduled enqueue, duplicate
 * detection by message id, dead-lettering after the last delivery, the Standard tier's size
 * limits, and with `sessions` one holder per session at a time under an expiring lock, each
 * session in sequence order (https://learn.microsoft.com/azure/service-bus-messaging/message-sessions).
 * A receive is one `UPDATE … RETURNING` over a subselect; a session lock is a row taken by one
 * upsert, and its messages' locks expire with it. A row that cannot be read (not JSON, or not a
 * flat property map: a hostile writer's) is quarantined with a warning, never delivered. Lock
 * times are wall-clock milliseconds, which processes share; this process also times its message
 * locks on the monotonic clock, so a wall-clock jump cannot hand them to its own next receive.
 */
export interface LocalQueueOptions {
  /** `LocalQueueDirectory`: the folder of the broker's database. */
  readonly directory: string;
  readonly queueName?: string;
  /** The queue requires sessions (`requiresSession`): every message names one. */
  readonly sessions?: boolean;
  /** Service Bus' defaults: a one-minute lock, 10 deliveries, a ten-minute window (0: off). */
  readonly lockDurationMs?: number;
  readonly maxDeliveryCount?: number;
  readonly duplicateDetectionWindowMs?: number;
  /** Where a quarantined row is reported; the console by default. */
  readonly onWarning?: (line: string) => void;
}

export interface ReceivedMessage {
  readonly messageId: string;
  readonly correlationId: string | undefined;
  readonly sessionId: string | undefined;
  readonly applicationProperties: Readonly<Record<string, string | number | boolean>>;
  readonly body: unknown;
  readonly enqueuedTimeUtc: Date;
  readonly sequenceNumber: number;
  /** 1 on the first delivery, as on Service Bus. */
  readonly deliveryCount: number;
  readonly lockToken: string;
}

export interface DeadLetteredMessage extends ReceivedMessage {
  readonly reason: string;
  readonly description: string;
  readonly deadLetteredTimeUtc: Date;
}

/** Active: visible now; scheduled: later; sessions: with an active, scheduled or locked message. */
export type QueueCounts = Readonly<
  Record<"active" | "scheduled" | "locked" | "deadLettered" | "quarantined" | "sessions", number>
>;

/** The message was settled by someone else, or its lock (or session) was lost first. */
export class MessageLockLostError extends HeraldError {
  constructor(messageId: string) {
    super(`The lock on message ${messageId} was lost; it will be delivered again`);
  }
}

type Row = Readonly<
  Record<"message_id" | "properties" | "body", string> &
    Record<"seq" | "enqueued_at" | "delivery_count", number> &
    Record<
      "session_id" | "correlation_id" | "lock_token" | "reason" | "description",
      string | null
    > &
    Record<"settled_at", number | null>
>;

const PROPERTIES = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
const HOLDS = `EXISTS (SELECT 1 FROM sessions s WHERE s.queue = :queue AND s.session_id = :session
  AND s.owner = :owner AND s.locked_until > :now)`;
const MINE = "WHERE queue = :queue AND session_id = :session AND owner = :owner";
const FREE = `NOT EXISTS (SELECT 1 FROM sessions s WHERE s.queue = :queue
  AND s.session_id = m.session_id AND s.locked_until > :now)`;
/** A visible message of a session nobody holds: what a consumer may accept the session for. */
const TAKEABLE = `m.queue = :queue AND m.state = 'active' AND m.session_id IS NOT NULL
  AND m.visible_at <= :now AND ${FREE}`;
/** Every statement of a queue; parameters come from `#params`. */
const SQL = {
  insert: `INSERT INTO messages (queue, session_id, message_id, correlation_id, properties, body,
    enqueued_at, visible_at) VALUES (:entity, :session, :id, :correlation, :properties, :body,
    :enqueued, :visible)`,
  spent: `UPDATE messages SET state = 'dead', reason = 'MaxDeliveryCountExceeded', settled_at = :now,
    description = 'Message could not be consumed after ' || delivery_count || ' delivery attempts.',
    lock_token = NULL, owner = NULL WHERE delivery_count >= :maxDeliveries AND seq IN`,
  take: `UPDATE messages SET lock_token = lower(hex(randomblob(16))), owner = :owner,
    delivery_count = delivery_count + 1, visible_at = coalesce((SELECT locked_until FROM sessions s
    WHERE s.queue = :queue AND s.session_id = :session), :now + :lock) WHERE seq IN`,
  acceptable: `SELECT 1 FROM messages m WHERE ${TAKEABLE} LIMIT 1`,
  accept: `INSERT INTO sessions SELECT m.queue, m.session_id, :owner, :now + :lock FROM messages m
    WHERE ${TAKEABLE} ORDER BY m.seq LIMIT 1
    ON CONFLICT DO UPDATE SET owner = excluded.owner, locked_until = excluded.locked_until
    WHERE locked_until <= :now RETURNING session_id`,
  renewSession: `UPDATE sessions SET locked_until = :now + :lock ${MINE} AND locked_until > :now`,
  renewSessionMessages: `UPDATE messages SET visible_at = :now + :lock ${MINE} AND state = 'active'`,
  release: `DELETE FROM sessions ${MINE}`,
  complete: "DELETE FROM messages",
  abandon: "UPDATE messages SET lock_token = NULL, owner = NULL, visible_at = :now + :delay",
  deadLetter: `UPDATE messages SET state = 'dead', reason = :reason, description = :description,
    settled_at = :now, lock_token = NULL, owner = NULL`,
  renewLock:
    "UPDATE messages SET visible_at = :now + :lock WHERE seq = :seq AND lock_token = :token",
  counts: `SELECT count(*) FILTER (WHERE state = 'active' AND visible_at <= :now) AS active,
    count(*) FILTER (WHERE state = 'active' AND visible_at > :now AND lock_token IS NULL) AS scheduled,
    count(*) FILTER (WHERE state = 'active' AND visible_at > :now AND lock_token IS NOT NULL) AS locked,
    count(*) FILTER (WHERE state = 'dead') AS deadLettered,
    count(*) FILTER (WHERE state = 'quarantined') AS quarantined,
    count(DISTINCT session_id) FILTER (WHERE state = 'active') AS sessions
    FROM messages WHERE queue = :queue`,
  nextVisible: `SELECT min(visible_at) AS at FROM messages m WHERE queue = :queue AND state = 'active'
    AND lock_token IS NULL AND (session_id = :session OR :session IS NULL AND (:any OR ${FREE}))`,
  deadLetters: `SELECT * FROM messages WHERE queue = :queue AND state = 'dead'
    AND (handled = 0 OR NOT :unhandledOnly) ORDER BY seq`,
  handled: "UPDATE messages SET handled = 1 WHERE seq = :seq",
  letter: "SELECT message_id FROM messages WHERE seq = :seq AND queue = :queue AND state = 'dead'",
  removeLetter: "DELETE FROM messages WHERE seq = :seq AND queue = :queue AND state = 'dead'",
  replay: `INSERT INTO messages (queue, session_id, message_id, correlation_id, properties, body,
    enqueued_at, visible_at) SELECT queue, session_id, :copy, correlation_id, properties, body,
    :now, :now FROM messages WHERE seq = :seq`,
  quarantine: `UPDATE messages SET state = 'quarantined', reason = 'Unreadable', description = :why,
    lock_token = NULL, owner = NULL, settled_at = :now WHERE seq = :seq`,
};

/** Stores one message in `:entity` (a topic's send stores one per matching subscription). */
export const INSERT_MESSAGE = SQL.insert;

/** A message serialised and checked as Service Bus checks it at send time. */
function prepare(message: OutgoingMessage, sessions: boolean) {
  const id = message.messageId ?? randomUUID();
  const session = message.sessionId ?? null;
  if (sessions && !session)
    throw new HeraldError(`Message ${id} has no sessionId: the session-enabled queue requires one`);
  if (session !== null && session.length > MAX_SESSION_ID_LENGTH)
    throw new HeraldError(`Message ${id}: a sessionId has at most 128 characters`);
  const body = JSON.stringify(message.body ?? null);
  const properties = JSON.stringify(message.applicationProperties ?? {});
  const correlation = message.correlationId ?? null;
  const bytes = Buffer.byteLength(id + (session ?? "") + (correlation ?? "") + properties + body);
  if (bytes > MAX_MESSAGE_BYTES)
    throw new HeraldError(`Message ${id} is ${bytes} bytes; Service Bus Standard takes 262144`);
  return { id, session, correlation, properties, body, bytes };
}

/**
 * Sends to `entity` in batches of at most 256 KB, one transaction each, as the Service Bus
 * sender packs them, once every message passed its checks. `write` stores one message (a queue
 * row; a topic: a row per matching subscription) and wakes the queue it went to. A sender's id
 * seen within the window is dropped.
 */
export function sendMessages(
  db: BrokerDatabase,
  to: { readonly entity: string; readonly sessions?: boolean; readonly windowMs: number },
  messages: readonly OutgoingMessage[],
  visible: number,
  write: (message: Params & ReturnType<typeof prepare>) => void = (m) => {
    db.run(SQL.insert, m);
    db.wake(to.entity);
  },
): void {
  if (Number.isNaN(visible)) throw new HeraldError("schedule: invalid date");
  const all = messages.map((m) => prepare(m, to.sessions === true));
  for (let start = 0, end = 0; start < all.length; start = end) {
    let bytes = all[end++]!.bytes;
    while (end < all.length && (bytes += all[end]!.bytes) <= MAX_MESSAGE_BYTES) end += 1;
    const now = Date.now();
    db.transaction(() => {
      for (let i = start; i < end; i += 1) {
        const p = all[i]!; // an id the sender did not name cannot repeat
        const named = messages[i]!.messageId !== undefined;
        if (named && !db.firstSend(to.entity, p.id, to.windowMs, now)) continue;
        write({ ...p, entity: to.entity, enqueued: Math.max(now, visible), visible });
      }
    });
  }
}

export class LocalQueue {
  readonly queueName: string;
  readonly sessions: boolean;
  readonly lockDurationMs: number;
  readonly maxDeliveryCount: number;
  readonly duplicateDetectionWindowMs: number;
  readonly #db: BrokerDatabase;
  readonly #warn: (line: string) => void;
  /** Message locks this process holds (no sessions): sequence number → monotonic expiry. */
  readonly #held = new Map<number, number>();

  constructor(options: LocalQueueOptions) {
    this.queueName = options.queueName ?? "notifications";
    if (!/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(this.queueName))
      throw new HeraldError(`Invalid local queue name "${this.queueName}"`);
    this.sessions = options.sessions ?? false;
    this.lockDurationMs = options.lockDurationMs ?? 60_000;
    this.maxDeliveryCount = options.maxDeliveryCount ?? 10;
    this.duplicateDetectionWindowMs = options.duplicateDetectionWindowMs ?? 600_000;
    this.#warn = options.onWarning ?? ((line) => console.warn(line));
    this.#db = new BrokerDatabase(options.directory);
  }

  /** The database file. */
  get path(): string {
    return this.#db.file;
  }

  get description(): string {
    return `local queue "${this.queueName}" in ${this.#db.file}`;
  }

  enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    return Promise.resolve().then(() => this.send(messages));
  }

  schedule(message: OutgoingMessage, at: Date): Promise<void> {
    return Promise.resolve().then(() => this.send([message], at));
  }

  /** `enqueue`, or `schedule` with `at`, synchronously. */
  send(messages: readonly OutgoingMessage[], at?: Date): void {
    const to = {
      entity: this.queueName,
      sessions: this.sessions,
      windowMs: this.duplicateDetectionWindowMs,
    };
    sendMessages(this.#db, to, messages, at?.getTime() ?? Date.now());
  }

  /** Up to `maxCount` visible messages under a peek-lock, in sequence order (no sessions). */
  receive(maxCount = 1): ReceivedMessage[] {
    const taken = this.#take(maxCount, null) ?? [];
    for (const m of taken)
      this.#held.set(m.sequenceNumber, performance.now() + this.lockDurationMs);
    return taken;
  }

  /** Up to `maxCount` of a held session's visible messages in order; undefined: not held now. */
  receiveFromSession(sessionId: string, maxCount: number): ReceivedMessage[] | undefined {
    return this.#take(maxCount, sessionId);
  }

  /** Locks a session with a visible message that nobody holds (or whose holder lost it). */
  acceptSession(): string | undefined {
    const p = this.#params();
    // Looks before it writes: most looks find every session held, and a read takes no lock, so
    // consumers with nothing to take do not hold up the ones settling messages.
    if (this.#db.get(SQL.acceptable, p) === undefined) return undefined;
    return this.#db.get<{ session_id: string }>(SQL.accept, p)?.session_id;
  }

  /** Extends a held session's lock, and its messages', by the lock duration; false: it was lost. */
  renewSession(sessionId: string): boolean {
    const p = this.#params({ session: sessionId });
    return this.#db.transaction(() => {
      if (this.#db.run(SQL.renewSession, p) !== 1) return false;
      this.#db.run(SQL.renewSessionMessages, p);
      return true;
    });
  }

  releaseSession(sessionId: string): void {
    // One statement commits as it runs: the wake follows it.
    if (this.#db.run(SQL.release, this.#params({ session: sessionId })) > 0)
      this.#db.wake(this.queueName);
  }

  /** Removes the message: it was handled. */
  complete(message: ReceivedMessage): void {
    this.#settle(message, SQL.complete);
  }

  /** Releases the lock; the message is visible again after `delayMs`. */
  abandon(message: ReceivedMessage, delayMs = 0): void {
    this.#settle(message, SQL.abandon, { delay: delayMs }, true);
  }

  deadLetter(message: ReceivedMessage, why: { reason: string; description: string }): void {
    this.#settle(message, SQL.deadLetter, why, true);
  }

  /** Extends a message's lock by the lock duration (queues without sessions). */
  renewLock(message: ReceivedMessage): void {
    const p = this.#params({ seq: message.sequenceNumber, token: message.lockToken });
    if (this.#db.run(SQL.renewLock, p) !== 1) throw new MessageLockLostError(message.messageId);
    this.#held.set(message.sequenceNumber, performance.now() + this.lockDurationMs);
  }

  counts(): QueueCounts {
    return { ...this.#db.get<QueueCounts>(SQL.counts, this.#params())! };
  }

  /**
   * When a message nobody holds is visible next: of `sessionId`; else of the queue, on a session
   * queue only in sessions free to take (what `acceptSession` waits for).
   */
  nextVisibleAt(sessionId?: string): number | undefined {
    const p = this.#params({ session: sessionId ?? null, any: this.sessions ? 0 : 1 });
    return this.#db.get<{ at: number | null }>(SQL.nextVisible, p)?.at ?? undefined;
  }

  /** The dead letters, oldest first; their sequence number names them for `herald dlq`. */
  deadLetters(options: { unhandledOnly?: boolean } = {}): DeadLetteredMessage[] {
    const rows = this.#db.all<Row>(
      SQL.deadLetters,
      this.#params({ unhandledOnly: options.unhandledOnly === true ? 1 : 0 }),
    );
    return this.#read(rows).map(([m, row]) => ({
      ...m,
      reason: row.reason ?? "",
      description: row.description ?? "",
      deadLetteredTimeUtc: new Date(row.settled_at ?? 0),
    }));
  }

  /** Marks a dead letter handed to the dead-letter function (it stays, for `herald dlq`). */
  markDeadLetterHandled(id: string): void {
    this.#db.run(SQL.handled, { seq: Number(id) });
  }

  /** Removes one dead letter; false when it was not there (already replayed or purged). */
  removeDeadLetter(id: string): boolean {
    return this.#db.run(SQL.removeLetter, this.#params({ seq: Number(id) || -1 })) === 1;
  }

  /**
   * Sends a copy of a dead letter (body, properties, session, and its message id unless
   * `messageId`) and removes it, in one transaction. False when it is not there, or when
   * duplicate detection drops the copy (the id was sent within the window): the letter stays.
   */
  replayDeadLetter(id: string, messageId?: string): boolean {
    const p = this.#params({ seq: Number(id) || -1 });
    const window = this.duplicateDetectionWindowMs;
    const replayed = this.#db.transaction(() => {
      const letter = this.#db.get<{ message_id: string }>(SQL.letter, p);
      const copy = messageId ?? letter?.message_id ?? "";
      if (!letter || !this.#db.firstSend(this.queueName, copy, window, p.now as number))
        return false;
      this.#db.run(SQL.replay, { ...p, copy });
      this.#db.wake(this.queueName);
      return this.#db.run(SQL.removeLetter, p) === 1;
    });
    return replayed;
  }

  /**
   * Calls `listener` when this queue may have something new to take (a send, a message or
   * session given back): at once for this process's writes, soon for others'.
   */
  watch(listener: () => void): () => void {
    return this.#db.watch(this.queueName, listener);
  }

  close(): void {
    this.#db.close();
  }

  /** Takes visible messages (of one held session, with `sessionId`) under a lock. */
  #take(max: number, sessionId: string | null): ReceivedMessage[] | undefined {
    const p = this.#params({ max, session: sessionId, maxDeliveries: this.maxDeliveryCount });
    const ready = `(SELECT seq FROM messages WHERE queue = :queue AND state = 'active'
      AND visible_at <= :now AND seq NOT IN (SELECT value FROM json_each(:held))
      AND (session_id = :session OR :session IS NULL) ORDER BY seq LIMIT :max)`;
    const rows = this.#db.transaction(() => {
      if (sessionId !== null && this.#db.get(`SELECT 1 WHERE ${HOLDS}`, p) === undefined)
        return undefined;
      // Their consumer died on the last delivery: dead letters now, for the dead-letter trigger.
      if (this.#db.run(`${SQL.spent} ${ready}`, p) > 0) this.#db.wake(this.queueName);
      return this.#db.all<Row>(`${SQL.take} ${ready} RETURNING *`, p);
    });
    return rows && this.#read(rows).map(([m]) => m);
  }

  /** Everything a statement may name: the queue, this process, now, the locks held here. */
  #params(extra: Params = {}): Params {
    const now = Date.now();
    for (const [seq, until] of this.#held) if (until <= performance.now()) this.#held.delete(seq);
    this.#db.reapDeadHolders(now);
    this.#db.registerHolder();
    const held = JSON.stringify([...this.#held.keys()]);
    return { queue: this.queueName, owner: OWNER, now, lock: this.lockDurationMs, held, ...extra };
  }

  /** `wakes`: the change gives someone else something to take (see `BrokerDatabase.wake`). */
  #settle(message: ReceivedMessage, change: string, extra: Params = {}, wakes = false): void {
    const { sequenceNumber: seq, lockToken: token, sessionId } = message;
    const held = this.sessions ? `AND ${HOLDS}` : "";
    const sql = `${change} WHERE seq = :seq AND lock_token = :token AND state = 'active' ${held}`;
    const p = this.#params({ ...extra, seq, token, session: sessionId ?? null });
    const changed = this.#db.run(sql, p);
    if (wakes && changed === 1) this.#db.wake(this.queueName);
    this.#held.delete(seq);
    if (changed !== 1) throw new MessageLockLostError(message.messageId);
  }

  /** Rows as messages, in sequence order; an unreadable row is quarantined and left out. */
  #read(rows: readonly Row[]): [ReceivedMessage, Row][] {
    const read: [ReceivedMessage, Row][] = [];
    for (const row of [...rows].sort((a, b) => a.seq - b.seq)) {
      try {
        const message: ReceivedMessage = {
          messageId: row.message_id,
          correlationId: row.correlation_id ?? undefined,
          sessionId: row.session_id ?? undefined,
          applicationProperties: PROPERTIES.parse(JSON.parse(row.properties)),
          body: JSON.parse(row.body),
          enqueuedTimeUtc: new Date(row.enqueued_at),
          sequenceNumber: row.seq,
          deliveryCount: row.delivery_count,
          lockToken: row.lock_token ?? "",
        };
        read.push([message, row]);
      } catch (error) {
        const why = toError(error).message.replace(/\s+/g, " ").slice(0, 200);
        this.#db.run(SQL.quarantine, { why, now: Date.now(), seq: row.seq });
        this.#warn(
          `Local queue ${this.queueName}: quarantined unreadable message ${row.seq} (${why})`,
        );
      }
    }
    return read;
  }
}
