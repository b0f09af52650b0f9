import type { OutgoingMessage, QueuePort } from "./queue-port";

/** A message as the in-memory queue holds it: what was sent, when, and when it becomes visible. */
export interface RecordedMessage extends OutgoingMessage {
  /** Position in send order, from 1. */
  readonly sequence: number;
  readonly sentAt: Date;
  /** Set for `schedule`: the scheduled enqueue time asked for. */
  readonly scheduledFor?: Date;
}

/**
 * QueuePort in memory for tests: records every message (with its scheduled time) and lets the
 * test take them to hand to the trigger handler itself. Never used outside tests.
 */
export class MemoryQueue implements QueuePort {
  /** Everything ever sent, in order. */
  readonly sent: RecordedMessage[] = [];
  private pending: RecordedMessage[] = [];
  private sequence = 0;

  constructor(private readonly now: () => Date = () => new Date()) {}

  enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    for (const message of messages) this.record(message, undefined);
    return Promise.resolve();
  }

  schedule(message: OutgoingMessage, at: Date): Promise<void> {
    this.record(message, at);
    return Promise.resolve();
  }

  /** Removes and returns every message not yet taken, scheduled ones included. */
  takeAll(): RecordedMessage[] {
    const taken = this.pending;
    this.pending = [];
    return taken;
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
