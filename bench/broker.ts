import { randomUUID } from "node:crypto";

import { InvocationContext, type LogHandler } from "@azure/functions";

import type { Recipient } from "../shared/notifications/schema";
import type { OutgoingMessage, QueuePort } from "../shared/queue/queue-port";
import { sleep } from "./stats";

/** The trigger handler's signature, as `functions/notifications.ts` exports it. */
export type QueueTriggerHandler = (message: unknown, context: InvocationContext) => Promise<void>;

interface Held {
  /** The body as the wire carries it (JSON text), parsed per delivery as the host does. */
  readonly json: string;
  readonly messageId: string;
  readonly correlationId: string | undefined;
  readonly applicationProperties: Readonly<Record<string, unknown>>;
  readonly enqueuedAt: number;
  visibleAt: number;
  deliveryCount: number;
}

export interface BrokerOptions {
  /** host.json `extensions.serviceBus.maxConcurrentCalls` (Herald ships 16). */
  readonly maxConcurrentCalls: number;
  /** Service Bus' default max delivery count before dead-lettering. */
  readonly maxDeliveryCount?: number;
  /** The log handler given to every InvocationContext (the host forwards these lines). */
  readonly logHandler: LogHandler;
}

export interface BrokerRun {
  /** Handler duration of each invocation that completed, ms, in completion order. */
  readonly durationsMs: Float64Array;
  readonly invocations: number;
  readonly completed: number;
  /** Invocations that threw (abandoned: redelivered or dead-lettered). */
  readonly abandoned: number;
  readonly deadLettered: number;
  readonly duplicatesDropped: number;
  readonly scheduled: number;
  readonly wallMs: number;
}

/**
 * A stand-in for the Service Bus queue and the Functions host's trigger in one process:
 * `QueuePort` for Herald's sends, and a drain that calls the trigger handler the way the host
 * does (`InvocationContext` with `triggerMetadata.messageId`, `deliveryCount`,
 * `applicationProperties`), `maxConcurrentCalls` at a time, honouring scheduled enqueue
 * times, redelivering an invocation that threw with a higher delivery count, dead-lettering
 * after `maxDeliveryCount`, and dropping a message id it has seen (duplicate detection).
 * Kept in memory so the benchmark measures Herald, not a broker; the messages it holds are kept
 * as JSON text, so the backlog weighs little in the measured process.
 */
export class BenchBroker implements QueuePort {
  private ready: Held[] = [];
  private head = 0;
  private readonly waiting: Held[] = [];
  private readonly seen = new Set<string>();
  private duplicates = 0;
  private scheduledCount = 0;

  enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    for (const message of messages) this.add(message, Date.now());
    return Promise.resolve();
  }

  schedule(message: OutgoingMessage, at: Date): Promise<void> {
    this.scheduledCount += 1;
    this.add(message, at.getTime());
    return Promise.resolve();
  }

  /** Messages not yet delivered (ready or scheduled). */
  get depth(): number {
    return this.ready.length - this.head + this.waiting.length;
  }

  /** Delivers until nothing is ready, scheduled or in flight, or `deadline` (ms epoch) passes. */
  async drain(
    handler: QueueTriggerHandler,
    options: BrokerOptions,
    deadline = Infinity,
  ): Promise<BrokerRun> {
    const maxDeliveryCount = options.maxDeliveryCount ?? 10;
    const durations: number[] = [];
    let inFlight = 0;
    let invocations = 0;
    let abandoned = 0;
    let deadLettered = 0;
    const started = Date.now();

    const worker = async (): Promise<void> => {
      for (;;) {
        if (Date.now() > deadline) return;
        const message = this.next();
        if (message === undefined) {
          const due = this.waiting[0]?.visibleAt;
          if (due === undefined && inFlight === 0) return;
          // Nothing ready: wait for the next scheduled message or for in-flight work to add some.
          await sleep(due === undefined ? 2 : Math.max(1, Math.min(50, due - Date.now())));
          continue;
        }
        inFlight += 1;
        invocations += 1;
        const context = new InvocationContext({
          invocationId: randomUUID(),
          functionName: "notifications",
          triggerMetadata: {
            messageId: message.messageId,
            deliveryCount: message.deliveryCount,
            correlationId: message.correlationId,
            enqueuedTimeUtc: new Date(message.enqueuedAt).toISOString(),
            applicationProperties: message.applicationProperties,
          },
          logHandler: options.logHandler,
        });
        const t0 = performance.now();
        try {
          await handler(JSON.parse(message.json) as unknown, context);
          durations.push(performance.now() - t0);
        } catch {
          abandoned += 1;
          if (message.deliveryCount >= maxDeliveryCount) deadLettered += 1;
          else {
            message.deliveryCount += 1;
            this.ready.push(message);
          }
        } finally {
          inFlight -= 1;
        }
      }
    };
    await Promise.all(Array.from({ length: options.maxConcurrentCalls }, worker));
    return {
      durationsMs: Float64Array.from(durations),
      invocations,
      completed: durations.length,
      abandoned,
      deadLettered,
      duplicatesDropped: this.duplicates,
      scheduled: this.scheduledCount,
      wallMs: Date.now() - started,
    };
  }

  private add(message: OutgoingMessage, visibleAt: number): void {
    const messageId = message.messageId ?? randomUUID();
    if (this.seen.has(messageId)) {
      this.duplicates += 1;
      return;
    }
    this.seen.add(messageId);
    const held: Held = {
      // The broker keeps bytes, not the sender's object: later mutation must not leak in, and a
      // backlog of 10,000 requests (and their dispatches) costs Herald's heap what Service Bus
      // would: this text alone, not a parsed copy of every object in it.
      json: JSON.stringify(message.body),
      messageId,
      correlationId: message.correlationId,
      applicationProperties: { ...message.applicationProperties },
      enqueuedAt: Date.now(),
      visibleAt,
      deliveryCount: 1,
    };
    if (visibleAt <= Date.now()) {
      this.ready.push(held);
      return;
    }
    // Keep scheduled messages sorted by due time (few of them: retries and pacing deferrals).
    let lo = 0;
    let hi = this.waiting.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.waiting[mid]!.visibleAt <= visibleAt) lo = mid + 1;
      else hi = mid;
    }
    this.waiting.splice(lo, 0, held);
  }

  private next(): Held | undefined {
    const now = Date.now();
    while (this.waiting.length > 0 && this.waiting[0]!.visibleAt <= now)
      this.ready.push(this.waiting.shift()!);
    if (this.head >= this.ready.length) return undefined;
    const message = this.ready[this.head++]!;
    if (this.head > 4096 && this.head * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.head);
      this.head = 0;
    }
    return message;
  }
}

/**
 * LOB requests as a producer puts them on the queue: one single-recipient request per recipient,
 * each under its own id (the message id too).
 */
export function singleRecipientRequests(
  tenantId: string,
  recipients: readonly Recipient[],
  text: string,
): OutgoingMessage[] {
  return recipients.map((recipient) => {
    const id = `bench-${randomUUID()}`;
    return {
      messageId: id,
      body: {
        schemaVersion: 1,
        id,
        tenantId,
        recipients: [recipient],
        message: { text, format: "markdown" },
      },
    };
  });
}
