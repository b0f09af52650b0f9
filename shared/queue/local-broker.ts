import { randomUUID } from "node:crypto";
import { closeSync, mkdirSync, openSync, watch, writeFileSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";

import { processIsGone, processStartTicks } from "../util/process-liveness";

/**
 * The local broker's database: one SQLite file (`broker.db` in `LocalQueueDirectory`) that the
 * queues, topics and processes of this machine share, in WAL mode with a busy timeout, so
 * several processes use it at once (https://sqlite.org/wal.html); `synchronous=NORMAL` loses
 * nothing when a process dies, only a power cut can lose the last commits. Every state change is
 * one statement or one `BEGIN IMMEDIATE` transaction: the database's lock is the only lock, as in
 * goqite (https://github.com/maragudk/goqite). Tables: `messages` (every entity's messages, the
 * state a column), `duplicates` (message ids within the detection window), `sessions` (a row per
 * session lock), `holders` (the processes that hold locks) and `subscriptions` (topic filters).
 * Beside it, `broker.wake/` holds a file per queue, touched after the writes that give that
 * queue's consumers something to take (see `wake`).
 */
export const DATABASE_FILE = "broker.db";
export const WAKE_FOLDER = "broker.wake";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
  session_id TEXT, message_id TEXT NOT NULL, correlation_id TEXT, properties TEXT NOT NULL,
  body TEXT NOT NULL, enqueued_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,
  delivery_count INTEGER NOT NULL DEFAULT 0, lock_token TEXT, owner TEXT,
  state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'dead', 'quarantined')),
  reason TEXT, description TEXT, settled_at INTEGER, handled INTEGER NOT NULL DEFAULT 0) STRICT;
CREATE INDEX IF NOT EXISTS messages_in_order ON messages (queue, state, seq);
CREATE INDEX IF NOT EXISTS messages_of_session ON messages (queue, session_id, state, seq);
CREATE TABLE IF NOT EXISTS duplicates (queue TEXT NOT NULL, message_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL, PRIMARY KEY (queue, message_id)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (queue TEXT NOT NULL, session_id TEXT NOT NULL,
  owner TEXT NOT NULL, locked_until INTEGER NOT NULL, PRIMARY KEY (queue, session_id)) STRICT;
CREATE TABLE IF NOT EXISTS holders (owner TEXT PRIMARY KEY, host TEXT NOT NULL,
  pid INTEGER NOT NULL, started TEXT) STRICT;
CREATE TABLE IF NOT EXISTS subscriptions (topic TEXT NOT NULL, name TEXT NOT NULL,
  filter TEXT NOT NULL, PRIMARY KEY (topic, name)) STRICT;`;

let sqlite: typeof import("node:sqlite") | undefined;

function loadSqlite(): typeof import("node:sqlite") {
  if (sqlite !== undefined) return sqlite;
  // Node 22 still calls node:sqlite experimental and warns once when it loads, into every
  // `npm start`, CLI and test run. Only that warning, only while loading, is dropped.
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- kept only to be put back as it was
  const original = process.emitWarning;
  process.emitWarning = (warning: string | Error, ...rest: unknown[]) => {
    const type =
      typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    if (type === "ExperimentalWarning" && String(warning).includes("SQLite")) return;
    emit(warning, ...rest);
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded under the filter above
    return (sqlite = require("node:sqlite") as typeof import("node:sqlite"));
  } finally {
    process.emitWarning = original;
  }
}

/** This process as its locks name it: the random id tells two lifetimes of one pid apart. */
export const OWNER = randomUUID();
const HOST = hostname();

/** This process's row in `holders`. */
const HOLDER = {
  owner: OWNER,
  host: HOST,
  pid: process.pid,
  started: processStartTicks("self") ?? null,
};
/** What a dead holder had: its sessions go, its locked messages come back, its row goes. */
const REAP = [
  "DELETE FROM sessions WHERE owner = :owner",
  `UPDATE messages SET lock_token = NULL, owner = NULL, visible_at = :now
   WHERE owner = :owner AND state = 'active'`,
  "DELETE FROM holders WHERE owner = :owner",
];
/** The queues where a dead holder's locks are: they are woken once the locks are freed. */
const REAPED_QUEUES = `SELECT queue FROM sessions WHERE owner = :owner
  UNION SELECT queue FROM messages WHERE owner = :owner AND state = 'active'`;

/** Known dead: no such process on this host, or one that started at another time. */
export function holderIsDead(pid: number, started: string | null): boolean {
  return processIsGone(pid, started ?? undefined);
}

/**
 * Drain loops of this process by queue (and database file), woken at once by its own writes;
 * other processes' wake them through a watch.
 */
const listeners = new Map<string, Set<() => void>>();

export type Params = Record<string, SQLInputValue>;

/** What a touch writes, always at offset 0: the write itself is the signal, not the content. */
const WAKE_BYTE = Buffer.from("1");

export class BrokerDatabase {
  readonly file: string;
  readonly #wakeFolder: string;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #registered = false;
  #lastReapMs = 0;
  #lastSweepMs = 0;
  /** The wake files this process touched, open: a touch is one write, not open-write-close. */
  readonly #wakeFds = new Map<string, number>();
  /** Queues to wake once the transaction in progress commits. */
  readonly #toWake = new Set<string>();

  constructor(directory: string) {
    this.file = join(resolve(directory), DATABASE_FILE);
    mkdirSync(dirname(this.file), { recursive: true });
    this.#wakeFolder = join(dirname(this.file), WAKE_FOLDER);
    mkdirSync(this.#wakeFolder, { recursive: true });
    this.#db = new (loadSqlite().DatabaseSync)(this.file, { timeout: 10_000 });
    this.#db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
      PRAGMA case_sensitive_like = ON; ${SCHEMA}`);
  }

  run(sql: string, params: Params = {}): number {
    return Number(this.#prepare(sql).run(params).changes);
  }

  get<T>(sql: string, params: Params = {}): T | undefined {
    return this.#prepare(sql).get(params) as T | undefined;
  }

  all<T>(sql: string, params: Params = {}): T[] {
    return this.#prepare(sql).all(params) as T[];
  }

  /** One write transaction, its lock taken at once (`IMMEDIATE`), never upgraded from a read. */
  transaction<T>(work: () => T): T {
    let result: T;
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      result = work();
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#toWake.clear();
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    }
    // Outside the try: what committed stays committed whatever a listener does.
    const woken = [...this.#toWake];
    this.#toWake.clear();
    for (const queue of woken) this.#wakeNow(queue);
    return result;
  }

  /**
   * Duplicate detection, inside the send's transaction: true the first time `id` is sent to
   * `entity` within the window (https://learn.microsoft.com/azure/service-bus-messaging/duplicate-detection).
   */
  firstSend(entity: string, id: string, windowMs: number, now: number): boolean {
    if (windowMs <= 0) return true;
    if (now - this.#lastSweepMs > 60_000) {
      this.#lastSweepMs = now;
      this.run("DELETE FROM duplicates WHERE expires_at <= :now", { now });
    }
    const sql = `INSERT INTO duplicates VALUES (:entity, :id, :expires) ON CONFLICT DO UPDATE
      SET expires_at = excluded.expires_at WHERE expires_at <= :now RETURNING 1`;
    return this.get(sql, { entity, id, expires: now + windowMs, now }) !== undefined;
  }

  /** Records this process before its first lock, so others on this host see when it died. */
  registerHolder(): void {
    if (this.#registered) return;
    this.run(
      "INSERT INTO holders VALUES (:owner, :host, :pid, :started) ON CONFLICT DO NOTHING",
      HOLDER,
    );
    this.#registered = true;
  }

  /**
   * Frees at once the sessions and locked messages (delivery counted) of this host's processes
   * that are known to be dead; another host's wait for their expiry. At most every 200 ms.
   */
  reapDeadHolders(now: number): void {
    if (now - this.#lastReapMs < 200 || this.#db.isTransaction) return;
    this.#lastReapMs = now;
    const sql = "SELECT owner, pid, started FROM holders WHERE host = :host AND owner <> :owner";
    const holders = this.all<{ owner: string; pid: number; started: string | null }>(sql, HOLDER);
    for (const { owner } of holders.filter((h) => holderIsDead(h.pid, h.started)))
      this.transaction(() => {
        for (const { queue } of this.all<{ queue: string }>(REAPED_QUEUES, { owner }))
          this.wake(queue);
        REAP.forEach((step) => this.run(step, { owner, now }));
      });
  }

  /**
   * Marks a write that gives `queue`'s consumers something to take (a send, a message or session
   * given back, a dead letter): once it commits, this process's drain loops of that queue are
   * called, and the queue's file in `broker.wake/` is touched for other processes' loops, which
   * watch it. Not the write-ahead log, which every receive, complete and renewal of every queue
   * changes: with 8 processes on one file, each process's watch fired for the others' ~1,000
   * writes a second (0.4 s of CPU per idle process in a 7 s bench run), and each firing had it
   * scan for sessions under the write lock, so the busy consumers waited for the lock
   * (event-loop stalls of 100-250 ms). Per queue: the delivery events sent to the topic's
   * subscriptions, one per notification, do not wake the work queue's consumers.
   */
  wake(queue: string): void {
    if (this.#db.isTransaction) this.#toWake.add(queue);
    else this.#wakeNow(queue);
  }

  /**
   * Calls `listener` after writes that give `queue`'s consumers something to take (see `wake`):
   * this process's at once, others' within ~20 ms.
   */
  watch(queue: string, listener: () => void): () => void {
    const key = this.#listenersKey(queue);
    const local = listeners.get(key) ?? new Set();
    listeners.set(key, local.add(listener));
    let timer: NodeJS.Timeout | undefined;
    let watcher: ReturnType<typeof watch> | undefined;
    try {
      const file = this.#wakeFile(queue);
      writeFileSync(file, "", { flag: "a" });
      // The poll covers where watching fails (and a wake file someone deleted).
      watcher = watch(file, () => {
        if (timer !== undefined) return;
        timer = setTimeout(() => {
          timer = undefined;
          listener();
        }, 20);
      });
      watcher.on("error", () => watcher?.close());
    } catch {
      watcher = undefined;
    }
    return () => {
      local.delete(listener);
      watcher?.close();
      clearTimeout(timer);
    };
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
    for (const fd of this.#wakeFds.values()) closeSync(fd);
    this.#wakeFds.clear();
  }

  #wakeNow(queue: string): void {
    for (const listener of listeners.get(this.#listenersKey(queue)) ?? []) listener();
    try {
      // Windows reports a change to a file held open only once its cache is flushed: there the
      // touch opens, writes and closes.
      if (process.platform === "win32") return writeFileSync(this.#wakeFile(queue), WAKE_BYTE);
      let fd = this.#wakeFds.get(queue);
      if (fd === undefined) this.#wakeFds.set(queue, (fd = openSync(this.#wakeFile(queue), "w")));
      writeSync(fd, WAKE_BYTE, 0, 1, 0);
    } catch {
      // Other processes then find the work at their next poll.
    }
  }

  #wakeFile(queue: string): string {
    // Queue names have slashes (a topic's subscriptions): one flat file name per queue.
    return join(this.#wakeFolder, encodeURIComponent(queue));
  }

  #listenersKey(queue: string): string {
    return `${this.file}\n${queue}`;
  }

  #prepare(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      // One parameter object serves statements that use only some of its names.
      statement.setAllowUnknownNamedParameters(true);
      this.#statements.set(sql, statement);
    }
    return statement;
  }
}
