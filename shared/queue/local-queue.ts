import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";

import { z } from "zod";

import { HeraldError, toError } from "../errors";
import type { DeadLetter } from "./dead-letters";
import { BrokerDatabase, OWNER, type Params } from "./local-broker";
import { MAX_MESSAGE_BYTES, MAX_SESSION_ID_LENGTH, type OutgoingMessage } from "./queue-port";

/**
 * A queue of the local broker (`local-broker.ts`) with the Service Bus contract Herald relies
 * on: peek-lock with renewal, delivery count, abandon with a delay, scheduled enqueue, duplicate
 * detection by message id, dead-lettering after the last delivery, the Standard tier's size
 * limits, and with `sessions` one holder per session at a time under an expiring lock, each
 * session in sequence order (https://learn.microsoft.com/azure/service-bus-messaging/message-sessions).
 * A receive is one `UPDATE … RETURNING` over a subselect; a session lock is a row taken by one
 * upsert, and its locked messages expire with it. A row that cannot be read (not JSON, or not a
 * flat property map: a hostile writer's) is quarantined, with a warning, never delivered.
 * Lock times are wall-clock milliseconds, which processes share; this process also times its own
 * message locks on the monotonic clock, so a wall-clock jump cannot give them to its own receive.
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

interface Row {
  readonly seq: number;
  readonly session_id: string | null;
  readonly message_id: string;
  readonly correlation_id: string | null;
  readonly properties: string;
  readonly body: string;
  readonly enqueued_at: number;
  readonly delivery_count: number;
  readonly lock_token: string | null;
  readonly reason: string | null;
  readonly description: string | null;
  readonly settled_at: number | null;
}

const PROPERTIES = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
const NOT_HELD = "seq NOT IN (SELECT value FROM json_each(:held))";
const HOLDS = `EXISTS (SELECT 1 FROM sessions s WHERE s.queue = :queue AND s.session_id = :session
  AND s.owner = :owner AND s.locked_until > :now)`;
/** A session's messages are locked as long as the session is. */
const SESSION_LOCK =
  "(SELECT locked_until FROM sessions s WHERE s.queue = :queue AND s.session_id = :session)";
export const INSERT = `INSERT INTO messages (queue, session_id, message_id, correlation_id,
  properties, body, enqueued_at, visible_at) VALUES (:entity, :session, :id, :correlation,
  :properties, :body, :enqueued, :visible)`;

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
 * row; a topic: a row per matching subscription). A sender's id seen within the window is dropped.
 */
export function sendMessages(
  db: BrokerDatabase,
  to: { readonly entity: string; readonly sessions?: boolean; readonly windowMs: number },
  messages: readonly OutgoingMessage[],
  visible: number,
  write: (message: Params & ReturnType<typeof prepare>) => void,
): void {
  if (Number.isNaN(visible)) throw new HeraldError("schedule: invalid date");
  const all = messages.map((m) => prepare(m, to.sessions === true));
  for (let start = 0, end = 0; start < all.length; start = end) {
    let bytes = all[end++]!.bytes;
    while (end < all.length && (bytes += all[end]!.bytes) <= MAX_MESSAGE_BYTES) end += 1;
    const now = Date.now();
    db.transaction(() => {
      for (let i = start; i < end; i += 1) {
        const p = all[i]!; // an id the sender did not give cannot repeat
        if (
          messages[i]!.messageId !== undefined &&
          !db.firstSend(to.entity, p.id, to.windowMs, now)
        )
          continue;
        write({ ...p, entity: to.entity, enqueued: Math.max(now, visible), visible });
      }
    });
  }
  db.notify();
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

  /** Where it is, for messages: the queue and the database file. */
  get description(): string {
    return `local queue "${this.queueName}" in ${this.#db.file}`;
  }

  enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    return promised(() => this.send(messages));
  }

  schedule(message: OutgoingMessage, at: Date): Promise<void> {
    return promised(() => this.send([message], at));
  }

  /** `enqueue`, or `schedule` with `at`, synchronously. */
  send(messages: readonly OutgoingMessage[], at?: Date): void {
    const { queueName: entity, sessions, duplicateDetectionWindowMs: windowMs } = this;
    const to = { entity, sessions, windowMs };
    sendMessages(this.#db, to, messages, at?.getTime() ?? Date.now(), (p) =>
      this.#db.run(INSERT, p),
    );
  }

  /** Up to `maxCount` visible messages under a peek-lock, in sequence order (no sessions). */
  receive(maxCount = 1): ReceivedMessage[] {
    const taken = this.#take(maxCount, undefined) ?? [];
    const until = performance.now() + this.lockDurationMs;
    for (const m of taken) this.#held.set(m.sequenceNumber, until);
    return taken;
  }

  /** Up to `maxCount` of a held session's visible messages in order; undefined: not held now. */
  receiveFromSession(sessionId: string, maxCount: number): ReceivedMessage[] | undefined {
    return this.#take(maxCount, sessionId);
  }

  /** Locks a session with a visible message: none held, or its lock expired or its holder died. */
  acceptSession(): string | undefined {
    return this.#db.get<{ session_id: string }>(
      `INSERT INTO sessions SELECT m.queue, m.session_id, :owner, :now + :lock FROM messages m
       WHERE m.queue = :queue AND m.state = 'active' AND m.session_id IS NOT NULL
         AND m.visible_at <= :now AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.queue = :queue
           AND s.session_id = m.session_id AND s.locked_until > :now) ORDER BY m.seq LIMIT 1
       ON CONFLICT DO UPDATE SET owner = excluded.owner, locked_until = excluded.locked_until
         WHERE locked_until <= :now RETURNING session_id`,
      this.#params(),
    )?.session_id;
  }

  /** Extends a held session's lock, and its messages', by the lock duration; false: it was lost. */
  renewSession(sessionId: string): boolean {
    const p = this.#params({ session: sessionId });
    return this.#db.transaction(() => {
      const mine = "WHERE queue = :queue AND session_id = :session AND owner = :owner";
      if (
        this.#db.run(
          `UPDATE sessions SET locked_until = :now + :lock ${mine} AND locked_until > :now`,
          p,
        ) === 0
      )
        return false;
      this.#db.run(`UPDATE messages SET visible_at = :now + :lock ${mine} AND state = 'active'`, p);
      return true;
    });
  }

  releaseSession(sessionId: string): void {
    const sql =
      "DELETE FROM sessions WHERE queue = :queue AND session_id = :session AND owner = :owner";
    this.#db.run(sql, this.#params({ session: sessionId }));
  }

  /** Removes the message: it was handled. */
  complete(message: ReceivedMessage): void {
    this.#settle(message, "DELETE FROM messages");
  }

  /** Releases the lock; the message is visible again after `delayMs`. */
  abandon(message: ReceivedMessage, delayMs = 0): void {
    const change =
      "UPDATE messages SET lock_token = NULL, owner = NULL, visible_at = :now + :delay";
    this.#settle(message, change, { delay: delayMs });
  }

  deadLetter(message: ReceivedMessage, why: { reason: string; description: string }): void {
    const change = `UPDATE messages SET state = 'dead', reason = :reason,
      description = :description, settled_at = :now, lock_token = NULL, owner = NULL`;
    this.#settle(message, change, why);
  }

  /** Extends a message's lock by the lock duration (queues without sessions). */
  renewLock(message: ReceivedMessage): void {
    const sql =
      "UPDATE messages SET visible_at = :now + :lock WHERE seq = :seq AND lock_token = :token";
    const p = this.#params({ seq: message.sequenceNumber, token: message.lockToken });
    if (this.#db.run(sql, p) !== 1) throw new MessageLockLostError(message.messageId);
    this.#held.set(message.sequenceNumber, performance.now() + this.lockDurationMs);
  }

  counts(): QueueCounts {
    const active = "state = 'active' AND visible_at";
    const counts = this.#db.get<QueueCounts>(
      `SELECT count(*) FILTER (WHERE ${active} <= :now) AS active,
         count(*) FILTER (WHERE ${active} > :now AND lock_token IS NULL) AS scheduled,
         count(*) FILTER (WHERE ${active} > :now AND lock_token IS NOT NULL) AS locked,
         count(*) FILTER (WHERE state = 'dead') AS deadLettered,
         count(*) FILTER (WHERE state = 'quarantined') AS quarantined,
         count(DISTINCT session_id) FILTER (WHERE state = 'active') AS sessions
       FROM messages WHERE queue = :queue`,
      this.#params(),
    )!;
    return { ...counts };
  }

  /**
   * When a message is visible next that nobody holds: of `sessionId`; or, on a session queue, of
   * any session free to take (what `acceptSession` waits for).
   */
  nextVisibleAt(sessionId?: string): number | undefined {
    const free = `NOT EXISTS (SELECT 1 FROM sessions s WHERE s.queue = :queue
      AND s.session_id = messages.session_id AND s.locked_until > :now)`;
    const which =
      sessionId !== undefined ? "AND session_id = :session" : this.sessions ? `AND ${free}` : "";
    const sql = `SELECT min(visible_at) AS at FROM messages WHERE queue = :queue
      AND state = 'active' AND lock_token IS NULL ${which}`;
    return (
      this.#db.get<{ at: number | null }>(sql, this.#params({ session: sessionId ?? null }))?.at ??
      undefined
    );
  }

  /** The dead letters, oldest first; `id` (the sequence number) names them for `herald dlq`. */
  deadLetters(options: { unhandledOnly?: boolean } = {}): DeadLetter[] {
    const unhandled = options.unhandledOnly === true ? "AND handled = 0" : "";
    const sql = `SELECT * FROM messages WHERE queue = :queue AND state = 'dead' ${unhandled} ORDER BY seq`;
    return this.#read(this.#db.all<Row>(sql, this.#params())).map(([m, row]) => ({
      id: String(m.sequenceNumber),
      messageId: m.messageId,
      correlationId: m.correlationId,
      sessionId: m.sessionId,
      applicationProperties: m.applicationProperties,
      body: m.body,
      enqueuedTime: m.enqueuedTimeUtc,
      deadLetteredTime: new Date(row.settled_at ?? 0),
      deliveryCount: m.deliveryCount,
      reason: row.reason ?? "",
      description: row.description ?? "",
    }));
  }

  /** Marks a dead letter handed to the dead-letter function (it stays, for `herald dlq`). */
  markDeadLetterHandled(id: string): void {
    this.#db.run("UPDATE messages SET handled = 1 WHERE seq = :seq", { seq: Number(id) });
  }

  /** Removes one dead letter; false when it was not there (already replayed or purged). */
  removeDeadLetter(id: string): boolean {
    const sql = "DELETE FROM messages WHERE seq = :seq AND queue = :queue AND state = 'dead'";
    return this.#db.run(sql, this.#params({ seq: Number(id) || -1 })) === 1;
  }

  /**
   * Sends a copy of a dead letter (body, properties, session, and its message id unless
   * `messageId`) and removes it, in one transaction. False when it is not there, or when
   * duplicate detection drops the copy (the id was sent within the window): the letter stays.
   */
  replayDeadLetter(id: string, messageId?: string): boolean {
    const p = this.#params({ seq: Number(id) || -1 });
    const sql =
      "SELECT message_id FROM messages WHERE seq = :seq AND queue = :queue AND state = 'dead'";
    const replayed = this.#db.transaction(() => {
      const letter = this.#db.get<{ message_id: string }>(sql, p);
      const copy = messageId ?? letter?.message_id;
      const window = this.duplicateDetectionWindowMs;
      if (
        !letter ||
        copy === undefined ||
        !this.#db.firstSend(this.queueName, copy, window, p.now as number)
      )
        return false;
      const copied = `INSERT INTO messages (queue, session_id, message_id, correlation_id,
        properties, body, enqueued_at, visible_at) SELECT queue, session_id, :copy,
        correlation_id, properties, body, :now, :now FROM messages WHERE seq = :seq`;
      this.#db.run(copied, { ...p, copy });
      return this.#db.run("DELETE FROM messages WHERE seq = :seq", p) === 1;
    });
    if (replayed) this.#db.notify();
    return replayed;
  }

  /** Calls `listener` after sends to the broker: from this process at once, soon from others. */
  watch(listener: () => void): () => void {
    return this.#db.watch(listener);
  }

  close(): void {
    this.#db.close();
  }

  /** Takes visible messages (of one held session, with `sessionId`) under a lock. */
  #take(max: number, sessionId: string | undefined): ReceivedMessage[] | undefined {
    const p = this.#params({ max, session: sessionId ?? null });
    const ready = `queue = :queue AND state = 'active' AND visible_at <= :now AND ${NOT_HELD}
      ${sessionId === undefined ? "" : "AND session_id = :session"}`;
    const rows = this.#db.transaction(() => {
      if (sessionId !== undefined && this.#db.get(`SELECT 1 WHERE ${HOLDS}`, p) === undefined)
        return undefined;
      this.#db.run(
        `UPDATE messages SET state = 'dead', reason = 'MaxDeliveryCountExceeded', settled_at = :now,
         description = 'Message could not be consumed after ' || delivery_count || ' delivery attempts.',
         lock_token = NULL, owner = NULL WHERE ${ready} AND delivery_count >= :maxDeliveries`,
        { ...p, maxDeliveries: this.maxDeliveryCount },
      );
      return this.#db.all<Row>(
        `UPDATE messages SET lock_token = lower(hex(randomblob(16))), owner = :owner,
         delivery_count = delivery_count + 1, visible_at = ${sessionId === undefined ? ":now + :lock" : SESSION_LOCK}
         WHERE seq IN (SELECT seq FROM messages WHERE ${ready} ORDER BY seq LIMIT :max) RETURNING *`,
        p,
      );
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

  #settle(message: ReceivedMessage, change: string, extra: Params = {}): void {
    const session = this.sessions ? `AND ${HOLDS}` : "";
    const sql = `${change} WHERE seq = :seq AND lock_token = :token AND state = 'active' ${session}`;
    const { sequenceNumber: seq, lockToken: token } = message;
    const changed = this.#db.run(
      sql,
      this.#params({ ...extra, seq, token, session: message.sessionId ?? null }),
    );
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
        const sql = `UPDATE messages SET state = 'quarantined', reason = 'Unreadable',
          description = :why, lock_token = NULL, owner = NULL, settled_at = :now WHERE seq = :seq`;
        this.#db.run(sql, { why, now: Date.now(), seq: row.seq });
        this.#warn(
          `Local queue ${this.queueName}: quarantined unreadable message ${row.seq} (${why})`,
        );
      }
    }
    return read;
  }
}

/** A synchronous step as the promise a port returns (a throw becomes a rejection). */
function promised(work: () => void): Promise<void> {
  try {
    work();
    return Promise.resolve();
  } catch (error) {
    return Promise.reject(toError(error));
  }
}
