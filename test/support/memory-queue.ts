import {
  type OutgoingMessage,
  type QueuePort,
  WORK_KIND_PROPERTY,
} from "../../shared/queue/queue-port";

/** A message as the in-memory queue holds it: what was sent, when, and when it becomes visible. */
export interface RecordedMessage extends OutgoingMessage {
  /** Position in send order, from 1. */
  readonly sequence: number;
  readonly sentAt: Date;
  /** Set for `schedule`: the scheduled enqueue time asked for. */
  readonly scheduledFor?: Date;
}

export interface MemoryQueueOptions {
  /**
   * Service Bus' duplicate detection: a message id seen within this window is dropped (Herald's
   * queues have it on, 10 minutes). 0 turns it off.
   */
  readonly duplicateDetectionWindowMs?: number;
}

/**
 * QueuePort in memory for tests: records every message (with its scheduled time) and lets the
 * test take them to hand to the trigger handler itself. Drops a message id it saw within the
 * duplicate detection window, as the broker does. Test support only.
 */
export class MemoryQueue implements QueuePort {
  /** Everything ever sent, in order (duplicates the broker would drop are not recorded). */
  readonly sent: RecordedMessage[] = [];
  /** Messages dropped by duplicate detection. */
  readonly duplicates: OutgoingMessage[] = [];
  private pending: RecordedMessage[] = [];
  private sequence = 0;
  private readonly seen = new Map<string, number>();
  private readonly windowMs: number;

  constructor(
    private readonly now: () => Date = () => new Date(),
    options: MemoryQueueOptions = {},
  ) {
    this.windowMs = options.duplicateDetectionWindowMs ?? 600_000;
  }

  enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    for (const message of messages) this.record(message, undefined);
    return Promise.resolve();
  }

  schedule(message: OutgoingMessage, at: Date): Promise<void> {
    this.record(message, at);
    return Promise.resolve();
  }

  /**
   * Removes and returns every message not yet taken, scheduled ones included; with `kind`, only
   * the work items of that kind (`heraldKind`), the others left waiting.
   */
  takeAll(kind?: string): RecordedMessage[] {
    if (kind === undefined) {
      const taken = this.pending;
      this.pending = [];
      return taken;
    }
    const taken = this.waitingOf(kind);
    this.remove(taken);
    return taken;
  }

  /** Work items of one kind not yet taken. */
  waitingOf(kind: string): RecordedMessage[] {
    return this.pending.filter((m) => m.applicationProperties?.[WORK_KIND_PROPERTY] === kind);
  }

  /** Takes the given messages off the queue (a test delivering some of them itself). */
  remove(messages: readonly RecordedMessage[]): void {
    const gone = new Set(messages);
    this.pending = this.pending.filter((m) => !gone.has(m));
  }

  /** Messages not yet taken. */
  get waiting(): readonly RecordedMessage[] {
    return this.pending;
  }

  private record(message: OutgoingMessage, at: Date | undefined): void {
    if (this.windowMs > 0 && message.messageId !== undefined) {
      const now = this.now().getTime();
      const seenAt = this.seen.get(message.messageId);
      if (seenAt !== undefined && now - seenAt < this.windowMs) {
        this.duplicates.push(message);
        return;
      }
      this.seen.set(message.messageId, now);
    }
    // Copy the body as the broker would: later mutation by the sender must not leak in.
    const recorded: RecordedMessage = {
      ...message,
      body: JSON.parse(JSON.stringify(message.body)) as unknown,
      sequence: ++this.sequence,
      sentAt: this.now(),
      ...(at !== undefined ? { scheduledFor: at } : {}),
    };
    this.sent.push(recorded);
    this.pending.push(recorded);
  }
}

/** The messages of one work kind (`heraldKind`), e.g. the dispatches among an intake's messages. */
export function ofKind<T extends OutgoingMessage>(messages: readonly T[], kind: string): T[] {
  return messages.filter((m) => m.applicationProperties?.heraldKind === kind);
}

/** The dispatches among what was queued (an HTTP intake also schedules its intake check). */
export function dispatches<T extends OutgoingMessage>(messages: readonly T[]): T[] {
  return ofKind(messages, "dispatch");
}
