import { randomUUID } from "node:crypto";

import type { DeadLetteredMessage } from "../queue/local-queue";

/** What a local broker queue offers its dead-letter tool (`herald dlq`). */
export interface LocalDeadLetterQueue {
  readonly description: string;
  deadLetters(): DeadLetteredMessage[];
  removeDeadLetter(id: string): boolean;
  /** Copy to the queue and removal in one step; false when gone or dropped as a duplicate. */
  replayDeadLetter(id: string, messageId?: string): boolean;
  close(): void;
}

/**
 * Dead letters as an operator handles them (`herald dlq`): list, show, replay to the queue they
 * came from, purge. One port, two adapters: the local broker's queue `npm start` drains, and a
 * Service Bus queue's `$deadletterqueue` (service-bus-dead-letters.ts).
 */
export interface DeadLetter {
  /** Names the dead letter for show, replay and purge: its sequence number. */
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
  /** Where the dead letters are, for messages (`local queue "notifications" in .data/queue/broker.db`). */
  readonly where: string;
  /** Reads without changing anything, oldest first. */
  list(max: number): Promise<DeadLetter[]>;
  /**
   * Sends a copy of each selected dead letter to its queue, then removes it; returns those
   * replayed (the local broker leaves out, and keeps, one whose copy duplicate detection drops).
   */
  replay(selection: DeadLetterSelection, options?: ReplayOptions): Promise<DeadLetter[]>;
  /** Removes the selected dead letters for good; returns those removed. */
  purge(selection: DeadLetterSelection): Promise<DeadLetter[]>;
  close(): Promise<void>;
}

export function isSelected(selection: DeadLetterSelection, letter: DeadLetter): boolean {
  return selection.kind === "all" || selection.ids.includes(letter.id);
}

/** The local broker's dead letters (a queue's rows in state `dead`). */
export class LocalDeadLetters implements DeadLetterStore {
  readonly where: string;

  constructor(
    private readonly queue: LocalDeadLetterQueue,
    private readonly newId: () => string = randomUUID,
  ) {
    this.where = queue.description;
  }

  list(max: number): Promise<DeadLetter[]> {
    return Promise.resolve(this.#all().slice(0, max));
  }

  replay(selection: DeadLetterSelection, options: ReplayOptions = {}): Promise<DeadLetter[]> {
    const id = () => (options.newMessageId === true ? this.newId() : undefined);
    return this.#each(selection, (letter) => this.queue.replayDeadLetter(letter.id, id()));
  }

  purge(selection: DeadLetterSelection): Promise<DeadLetter[]> {
    return this.#each(selection, (letter) => this.queue.removeDeadLetter(letter.id));
  }

  close(): Promise<void> {
    this.queue.close();
    return Promise.resolve();
  }

  #each(selection: DeadLetterSelection, act: (l: DeadLetter) => boolean): Promise<DeadLetter[]> {
    return Promise.resolve(this.#all().filter((l) => isSelected(selection, l) && act(l)));
  }

  #all(): DeadLetter[] {
    return this.queue.deadLetters().map((m) => ({
      id: String(m.sequenceNumber),
      messageId: m.messageId,
      correlationId: m.correlationId,
      sessionId: m.sessionId,
      applicationProperties: m.applicationProperties,
      body: m.body,
      enqueuedTime: m.enqueuedTimeUtc,
      deadLetteredTime: m.deadLetteredTimeUtc,
      deliveryCount: m.deliveryCount,
      reason: m.reason,
      description: m.description,
    }));
  }
}
