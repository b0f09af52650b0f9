import { HeraldError } from "../errors";
import { BrokerDatabase } from "./local-broker";
import { INSERT_MESSAGE, LocalQueue, type LocalQueueOptions, sendMessages } from "./local-queue";
import type { OutgoingMessage, QueuePort } from "./queue-port";
import { FilterError, filterProperties, filterToSql } from "./sql-filter";

/**
 * A topic of the local broker (Herald's `notification-events`): sent to as a queue is (its
 * duplicate detection included), and each subscription a queue of its own,
 * `<topic>/Subscriptions/<name>`, received from (peek-lock, delivery count, dead-letter) through
 * `LocalQueue`. A message is copied, in its send's transaction, to every subscription whose SQL
 * filter (`sql-filter.ts`) matches its application properties
 * (https://learn.microsoft.com/azure/service-bus-messaging/topic-filters).
 */
export interface LocalTopicOptions {
  /** `LocalQueueDirectory`: the folder of the broker's database. */
  readonly directory: string;
  readonly topicName?: string;
  /** Ten minutes by default; 0 turns duplicate detection off. */
  readonly duplicateDetectionWindowMs?: number;
}

/** Service Bus: 1-50 letters, digits, periods, hyphens and underscores. */
const SUBSCRIPTION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$/;

export class LocalTopic implements QueuePort {
  readonly topicName: string;
  readonly #db: BrokerDatabase;
  readonly #options: LocalTopicOptions;

  constructor(options: LocalTopicOptions) {
    this.topicName = options.topicName ?? "notification-events";
    if (!SUBSCRIPTION.test(this.topicName))
      throw new HeraldError(`Invalid topic "${this.topicName}"`);
    this.#options = options;
    this.#db = new BrokerDatabase(options.directory);
  }

  enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    return Promise.resolve().then(() => this.publish(messages));
  }

  schedule(message: OutgoingMessage, at: Date): Promise<void> {
    return Promise.resolve().then(() => this.publish([message], at));
  }

  /** Sends now (or at `at`) to every subscription whose filter matches, synchronously. */
  publish(messages: readonly OutgoingMessage[], at?: Date): void {
    const windowMs = this.#options.duplicateDetectionWindowMs ?? 600_000;
    const target = { entity: this.topicName, sessions: false, windowMs };
    const subscriptions = this.subscriptions().map(({ name, filter }) => ({
      entity: `${this.topicName}/Subscriptions/${name}`,
      matches: `SELECT (${filterToSql(filter)}) IS TRUE AS matched`,
    }));
    sendMessages(this.#db, target, messages, at?.getTime() ?? Date.now(), (message) => {
      const p = filterProperties(JSON.parse(message.properties) as Record<string, unknown>);
      for (const { entity, matches } of subscriptions)
        if (this.#db.get<{ matched: number }>(matches, { p })?.matched === 1)
          if (this.#db.run(INSERT_MESSAGE, { ...message, entity }) > 0) this.#db.wake(entity);
    });
  }

  /** Creates the subscription, or replaces its filter; refuses a filter it cannot evaluate. */
  subscribe(name: string, filter = "1=1"): void {
    if (!SUBSCRIPTION.test(name)) throw new HeraldError(`Invalid subscription name "${name}"`);
    try {
      this.#db.get(`SELECT (${filterToSql(filter)}) IS TRUE AS matched`, { p: "{}" });
    } catch (error) {
      if (error instanceof FilterError) throw error;
      throw new FilterError(`Filter "${filter}": ${(error as Error).message}`);
    }
    this.#db.run(
      `INSERT INTO subscriptions VALUES (:topic, :name, :filter)
       ON CONFLICT DO UPDATE SET filter = excluded.filter`,
      { topic: this.topicName, name, filter },
    );
  }

  subscriptions(): { name: string; filter: string }[] {
    const sql = "SELECT name, filter FROM subscriptions WHERE topic = :topic ORDER BY name";
    return this.#db.all(sql, { topic: this.topicName });
  }

  /** The subscription's queue, to receive from as from any local queue. */
  subscription(
    name: string,
    options: Omit<LocalQueueOptions, "directory" | "queueName"> = {},
  ): LocalQueue {
    if (!SUBSCRIPTION.test(name)) throw new HeraldError(`Invalid subscription name "${name}"`);
    const queueName = `${this.topicName}/Subscriptions/${name}`;
    return new LocalQueue({ ...options, directory: this.#options.directory, queueName });
  }

  close(): void {
    this.#db.close();
  }
}
