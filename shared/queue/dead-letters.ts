import { randomUUID } from "node:crypto";

import type { LocalDeadLetter } from "./local-queue";
import type { QueuePort } from "./queue-port";

/** What a local queue (plain or session) offers its dead-letter tool. */
export interface LocalDeadLetterQueue extends QueuePort {
  readonly path: string;
  deadLetterEntries(): Promise<LocalDeadLetter[]>;
  removeDeadLetter(id: string): Promise<boolean>;
}

/**
 * Dead letters as an operator handles them (`herald dlq`): list, show, replay to the queue they
 * came from, purge. One port, two adapters: the local queue `npm start` drains, and a Service
 * Bus queue's `$deadletterqueue` (service-bus-dead-letters.ts).
 */
export interface DeadLetter {
  /** Names the dead letter for show, replay and purge: the local file key, or the sequence number. */
  readonly id: string;
  readonly messageId: string;
  readonly correlationId: string | undefined;
  /** Kept on replay: the work queue is session-enabled and refuses a message without one. */
  readonly sessionId: string | undefined;
  readonly applicationProperties: Readonly<Record<string, string | number | boolean>>;
  readonly body: unknown;
  readonly enqueuedTime: Date | undefined;
  readonly deadLetteredTime: Date | undefined;
  readonly deliveryCount: number;
  readonly reason: string;
  readonly description: string;
}

/** Which dead letters an operation touches: these ids, or every one. */
export type DeadLetterSelection =
  { readonly kind: "ids"; readonly ids: readonly string[] } | { readonly kind: "all" };

export interface ReplayOptions {
  /** Send the copy with a new message id, so the queue's duplicate detection cannot drop it. */
  readonly newMessageId?: boolean;
}

export interface DeadLetterStore {
  /** Where the dead letters are, for messages (`local queue .data/queue/notifications`). */
  readonly where: string;
  /** Reads without changing anything, oldest first. */
  list(max: number): Promise<DeadLetter[]>;
  /** Sends a copy of each selected dead letter to its queue, then removes it; returns those replayed. */
  replay(selection: DeadLetterSelection, options?: ReplayOptions): Promise<DeadLetter[]>;
  /** Removes the selected dead letters for good; returns those removed. */
  purge(selection: DeadLetterSelection): Promise<DeadLetter[]>;
  close(): Promise<void>;
}

export function isSelected(selection: DeadLetterSelection, letter: DeadLetter): boolean {
  return selection.kind === "all" || selection.ids.includes(letter.id);
}

/** The local queue's dead letters (files under `<queue>/deadletter`). */
export class LocalDeadLetters implements DeadLetterStore {
  readonly where: string;

  constructor(
    private readonly queue: LocalDeadLetterQueue,
    private readonly newId: () => string = randomUUID,
  ) {
    this.where = `local queue ${queue.path}`;
  }

  async list(max: number): Promise<DeadLetter[]> {
    return (await this.#all()).slice(0, max);
  }

  async replay(selection: DeadLetterSelection, options: ReplayOptions = {}): Promise<DeadLetter[]> {
    const replayed: DeadLetter[] = [];
    for (const letter of (await this.#all()).filter((l) => isSelected(selection, l))) {
      // Copy first, then remove: a crash in between leaves a duplicate, never a loss.
      await this.queue.enqueue([
        {
          body: letter.body,
          messageId: options.newMessageId === true ? this.newId() : letter.messageId,
          ...(letter.correlationId !== undefined ? { correlationId: letter.correlationId } : {}),
          ...(letter.sessionId !== undefined ? { sessionId: letter.sessionId } : {}),
          applicationProperties: { ...letter.applicationProperties },
        },
      ]);
      if (await this.queue.removeDeadLetter(letter.id)) replayed.push(letter);
    }
    return replayed;
  }

  async purge(selection: DeadLetterSelection): Promise<DeadLetter[]> {
    const purged: DeadLetter[] = [];
    for (const letter of (await this.#all()).filter((l) => isSelected(selection, l))) {
      if (await this.queue.removeDeadLetter(letter.id)) purged.push(letter);
    }
    return purged;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  async #all(): Promise<DeadLetter[]> {
    return (await this.queue.deadLetterEntries()).map((e) => ({
      id: e.id,
      messageId: e.messageId,
      correlationId: e.correlationId,
      sessionId: e.sessionId,
      applicationProperties: e.applicationProperties,
      body: e.body,
      enqueuedTime: e.enqueuedTimeUtc,
      deadLetteredTime: e.deadLetteredTimeUtc,
      deliveryCount: e.deliveryCount,
      reason: e.deadLetterReason,
      description: e.deadLetterErrorDescription,
    }));
  }
}
