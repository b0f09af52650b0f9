import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";

import {
  InvocationContext,
  type LogHandler,
  type ServiceBusQueueHandler,
  type TriggerMetadata,
} from "@azure/functions";

import { toError } from "../errors";
import type { LocalQueue, ReceivedMessage } from "../queue/local-queue";

/**
 * What the Functions host's Service Bus trigger does with a queue, done on a local broker queue
 * (`shared/queue/local-queue.ts`): one message per invocation with the trigger's
 * `InvocationContext`; complete on success; on a throw, visible again after `retryDelayMs`, and
 * dead-lettered at the queue's last delivery; the lock renewed while the handler runs, up to
 * host.json's `maxAutoLockRenewalDuration`. A session queue is drained as the session trigger
 * does (https://learn.microsoft.com/azure/azure-functions/functions-bindings-service-bus#hostjson-settings):
 * up to `maxConcurrentSessions` sessions held, `maxConcurrentCallsPerSession` calls in each,
 * a session released after `sessionIdleTimeout` without a visible message.
 */
export interface DrainOptions {
  /** Becomes `context.functionName`. */
  readonly functionName: string;
  /** host.json `maxConcurrentCalls` (queues without sessions; 16 by default). */
  readonly maxConcurrentCalls?: number;
  /** host.json `maxConcurrentSessions` (8 by default). */
  readonly maxConcurrentSessions?: number;
  /** host.json `maxConcurrentCallsPerSession` (1 by default). */
  readonly maxConcurrentCallsPerSession?: number;
  /** host.json `sessionIdleTimeout` (5 s here). */
  readonly sessionIdleTimeoutMs?: number;
  /** How long a failed message waits before it is visible again (1 s). */
  readonly retryDelayMs?: number;
  /** Longest wait between looks at the broker; sends wake the loop sooner (1 s). */
  readonly pollIntervalMs?: number;
  /** host.json `maxAutoLockRenewalDuration` (five minutes). */
  readonly maxAutoLockRenewalMs?: number;
  /** Receives the handler's `context.log` calls and the drain loop's own lines. */
  readonly logHandler?: LogHandler;
}

export interface QueueDrainer {
  /** Stops taking messages and waits (up to `graceMs`) for the ones in flight. */
  stop(graceMs?: number): Promise<void>;
}

/** What the Service Bus extension puts in `context.triggerMetadata` (camel-cased by the worker). */
export function serviceBusTriggerMetadata(message: ReceivedMessage): TriggerMetadata {
  return {
    messageId: message.messageId,
    correlationId: message.correlationId,
    ...(message.sessionId !== undefined ? { sessionId: message.sessionId } : {}),
    deliveryCount: message.deliveryCount,
    enqueuedTimeUtc: message.enqueuedTimeUtc.toISOString(),
    // A local message never expires: Service Bus' default time to live is "forever" too.
    expiresAtUtc: "9999-12-31T23:59:59.999Z",
    lockToken: message.lockToken,
    sequenceNumber: message.sequenceNumber,
    contentType: "application/json",
    applicationProperties: { ...message.applicationProperties },
    // The older name the extension still fills in alongside applicationProperties.
    userProperties: { ...message.applicationProperties },
  };
}

export function defaultLogHandler(functionName: string): LogHandler {
  return (level, ...args) => {
    const line = `[${new Date().toISOString()}] ${functionName}: ${args.map(String).join(" ")}`;
    if (level === "error" || level === "critical") console.error(line);
    else if (level === "warning") console.warn(line);
    else if (level !== "trace" && level !== "debug") console.log(line);
  };
}

/** Drains `queue` into `handler`: with sessions when the queue requires them. */
export function startDraining(
  queue: LocalQueue,
  handler: ServiceBusQueueHandler,
  options: DrainOptions,
): QueueDrainer {
  return (
    queue.sessions
      ? new SessionLoop(queue, handler, options)
      : new QueueLoop(queue, handler, options)
  ).start();
}

/**
 * The local stand-in for a trigger on `<queue>/$DeadLetterQueue`: hands each dead letter to the
 * handler once and marks it handled; unlike Service Bus, the dead letter stays for `herald dlq`.
 * A handler that throws is offered it again at the next poll.
 */
export function startDeadLetterDraining(
  queue: LocalQueue,
  handler: ServiceBusQueueHandler,
  options: DrainOptions,
): QueueDrainer {
  return new DeadLetterLoop(queue, handler, options).start();
}

abstract class Loop implements QueueDrainer {
  protected running = true;
  protected readonly inFlight = new Set<Promise<void>>();
  protected readonly log: LogHandler;
  protected readonly pollMs: number;
  protected readonly retryDelayMs: number;
  protected readonly maxRenewalMs: number;
  #wake: (() => void) | undefined;
  #woken = false;
  #timer: NodeJS.Timeout | undefined;
  #unwatch: () => void = () => undefined;
  #loop: Promise<void> = Promise.resolve();

  constructor(
    protected readonly queue: LocalQueue,
    protected readonly handler: ServiceBusQueueHandler,
    protected readonly options: DrainOptions,
  ) {
    this.log = options.logHandler ?? defaultLogHandler(options.functionName);
    this.pollMs = Math.max(5, options.pollIntervalMs ?? 1000);
    this.retryDelayMs = options.retryDelayMs ?? 1000;
    this.maxRenewalMs = options.maxAutoLockRenewalMs ?? 5 * 60_000;
  }

  start(): this {
    this.#unwatch = this.queue.watch(() => this.onSend());
    this.#loop = this.#run();
    return this;
  }

  /** One look at the broker; returns how long to wait before the next (0: at once). */
  protected abstract turn(): number | Promise<number>;

  /** After the loop ended and the calls in flight settled (or the grace passed). */
  protected stopped(): void {}

  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    this.#unwatch();
    this.signal();
    await this.#loop;
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((done) => (timer = setTimeout(done, graceMs)));
      await Promise.race([Promise.allSettled([...this.inFlight]), grace]);
      clearTimeout(timer);
      if (this.inFlight.size > 0)
        this.log(
          "warning",
          `Stopped waiting for ${this.inFlight.size} message(s) in flight; their locks will expire and they will be delivered again`,
        );
    }
    this.stopped();
  }

  /** The queue may have something new to take (a send, a message or session given back). */
  protected onSend(): void {
    this.signal();
  }

  protected signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    if (wake) wake();
    else this.#woken = true;
  }

  /** Waits up to `untilMs` (wall clock), never longer than the poll interval. */
  protected waitUntil(untilMs: number | undefined): number {
    return Math.max(2, Math.min(this.pollMs, (untilMs ?? Infinity) - Date.now() + 2));
  }

  protected track(task: Promise<void>, done: () => void = () => undefined): void {
    const tracked = task.finally(() => {
      this.inFlight.delete(tracked);
      done();
      this.signal(); // a slot is free
    });
    this.inFlight.add(tracked);
  }

  protected context(metadata: TriggerMetadata): InvocationContext {
    return new InvocationContext({
      invocationId: randomUUID(),
      functionName: this.options.functionName,
      triggerMetadata: metadata,
      logHandler: this.log,
      options: {
        trigger: {
          type: "serviceBusTrigger",
          name: "message",
          queueName: this.queue.queueName,
          connection: "local",
          ...(this.queue.sessions ? { isSessionsEnabled: true } : {}),
        },
      },
    });
  }

  /** Calls the handler; then completes, or makes the message visible again, or dead-letters it. */
  protected async invokeAndSettle(message: ReceivedMessage): Promise<void> {
    const context = this.context(serviceBusTriggerMetadata(message));
    let failure: Error | undefined;
    try {
      await this.handler(message.body, context);
    } catch (error) {
      failure = toError(error);
    }
    try {
      if (failure === undefined) return this.queue.complete(message);
      const last = message.deliveryCount >= this.queue.maxDeliveryCount;
      const session = message.sessionId === undefined ? "" : `, SessionId=${message.sessionId}`;
      this.log(
        last ? "error" : "warning",
        `Executed '${this.options.functionName}' (Failed, Id=${context.invocationId}, MessageId=${message.messageId}${session}, DeliveryCount=${message.deliveryCount}): ${failure.message}` +
          (last ? "; dead-lettered" : `; delivered again in ${this.retryDelayMs} ms`),
      );
      if (!last) return this.queue.abandon(message, this.retryDelayMs);
      this.queue.deadLetter(message, {
        reason: "MaxDeliveryCountExceeded",
        description: `Message could not be consumed after ${message.deliveryCount} delivery attempts. Last error: ${failure.message}`,
      });
    } catch (error) {
      // The lock was lost: someone else has the message now, and it will be delivered again.
      this.log("warning", `Settling ${message.messageId} failed: ${toError(error).message}`);
    }
  }

  async #run(): Promise<void> {
    while (this.running) {
      this.#woken = false;
      let wait: number;
      try {
        wait = await this.turn();
      } catch (error) {
        this.log(
          "error",
          `Local queue ${this.queue.queueName} receive failed: ${toError(error).message}`,
        );
        wait = this.pollMs;
      }
      if (!this.running) break;
      // Yields to the event loop even when more is waiting: the handlers run on it.
      await (wait > 0 ? this.#sleep(wait) : new Promise((done) => setImmediate(done)));
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      if (!this.running || this.#woken) return done();
      this.#wake = () => {
        clearTimeout(this.#timer);
        done();
      };
      this.#timer = setTimeout(() => this.signal(), ms);
    });
  }
}

class QueueLoop extends Loop {
  protected turn(): number {
    const free = Math.max(1, this.options.maxConcurrentCalls ?? 16) - this.inFlight.size;
    if (free <= 0) return this.pollMs; // a call that ends wakes the loop
    const messages = this.queue.receive(free);
    for (const message of messages) this.track(this.#process(message));
    return messages.length === free ? 0 : this.waitUntil(this.queue.nextVisibleAt());
  }

  async #process(message: ReceivedMessage): Promise<void> {
    // Monotonic: a wall-clock jump must not end (or extend) renewal early.
    const renewUntil = performance.now() + this.maxRenewalMs;
    const renewal = setInterval(
      () => {
        if (performance.now() > renewUntil) return clearInterval(renewal);
        try {
          this.queue.renewLock(message);
        } catch (error) {
          clearInterval(renewal);
          this.log(
            "warning",
            `Lock renewal failed for ${message.messageId}: ${toError(error).message}`,
          );
        }
      },
      Math.max(50, Math.floor(this.queue.lockDurationMs / 2)),
    );
    try {
      await this.invokeAndSettle(message);
    } finally {
      clearInterval(renewal);
    }
  }
}

interface HeldSession {
  /** Calls in flight, with when each started (monotonic). */
  readonly calls: Map<Promise<void>, number>;
  readonly renewal: NodeJS.Timeout;
  lastActiveMs: number;
  lost: boolean;
}

class SessionLoop extends Loop {
  readonly #held = new Map<string, HeldSession>();
  #nextAcceptMs = 0;

  protected override onSend(): void {
    this.#nextAcceptMs = 0; // it may have brought a session nobody holds
    this.signal();
  }

  protected turn(): number {
    const perSession = Math.max(1, this.options.maxConcurrentCallsPerSession ?? 1);
    const idleMs = Math.max(0, this.options.sessionIdleTimeoutMs ?? 5_000);
    const now = Date.now();
    let until = now + this.pollMs;
    let busy = false;
    for (const [sessionId, held] of this.#held) {
      const free = perSession - held.calls.size;
      const messages = held.lost || free <= 0 ? [] : this.queue.receiveFromSession(sessionId, free);
      if (held.lost || messages === undefined) {
        this.#forget(sessionId, held);
        this.log("warning", `Session ${sessionId} lost: its lock expired or was taken over`);
        continue;
      }
      for (const message of messages) this.#start(held, message);
      if (messages.length > 0 || held.calls.size > 0) held.lastActiveMs = now;
      if (messages.length > 0 && messages.length === free) busy = true;
      else if (held.calls.size === 0 && now - held.lastActiveMs >= idleMs) {
        // Another consumer (or this one) takes it again when a message is visible.
        this.#forget(sessionId, held);
        this.queue.releaseSession(sessionId);
      } else if (held.calls.size === 0)
        until = Math.min(
          until,
          held.lastActiveMs + idleMs,
          this.queue.nextVisibleAt(sessionId) ?? until,
        );
    }
    const maxSessions = Math.max(1, this.options.maxConcurrentSessions ?? 8);
    if (this.#held.size < maxSessions && now >= this.#nextAcceptMs) {
      const accepted = this.queue.acceptSession();
      if (accepted !== undefined) {
        this.#hold(accepted);
        busy = true;
      } else
        this.#nextAcceptMs = Math.min(now + this.pollMs, this.queue.nextVisibleAt() ?? Infinity);
    }
    if (this.#held.size < maxSessions) until = Math.min(until, this.#nextAcceptMs);
    return busy ? 0 : this.waitUntil(until);
  }

  protected override stopped(): void {
    for (const [sessionId, held] of this.#held) {
      this.#forget(sessionId, held);
      // Releasing would let another consumer run the session beside the calls still here.
      if (held.calls.size === 0) this.queue.releaseSession(sessionId);
    }
  }

  #hold(sessionId: string): void {
    const held: HeldSession = {
      calls: new Map(),
      renewal: setInterval(
        () => this.#renew(sessionId, held),
        Math.max(50, Math.floor(this.queue.lockDurationMs / 3)),
      ),
      lastActiveMs: Date.now(),
      lost: false,
    };
    this.#held.set(sessionId, held);
  }

  #renew(sessionId: string, held: HeldSession): void {
    const now = performance.now();
    if ([...held.calls.values()].some((started) => now - started > this.maxRenewalMs)) {
      // A call this long is hung, as the host sees it: the session goes to another consumer.
      clearInterval(held.renewal);
      this.log(
        "warning",
        `Session ${sessionId}: a call ran past maxAutoLockRenewalMs; the lock is no longer renewed`,
      );
      return;
    }
    try {
      if (this.queue.renewSession(sessionId)) return;
      held.lost = true;
      this.signal(); // the loop lets it go
    } catch (error) {
      this.log("warning", `Session ${sessionId} lock renewal failed: ${toError(error).message}`);
    }
  }

  #forget(sessionId: string, held: HeldSession): void {
    clearInterval(held.renewal);
    this.#held.delete(sessionId);
  }

  #start(held: HeldSession, message: ReceivedMessage): void {
    const task = this.invokeAndSettle(message);
    held.calls.set(task, performance.now());
    this.track(task, () => held.calls.delete(task));
  }
}

class DeadLetterLoop extends Loop {
  protected async turn(): Promise<number> {
    for (const letter of this.queue.deadLetters({ unhandledOnly: true })) {
      if (!this.running) break;
      const context = this.context({
        messageId: letter.messageId,
        correlationId: letter.correlationId,
        deliveryCount: letter.deliveryCount,
        enqueuedTimeUtc: letter.enqueuedTimeUtc.toISOString(),
        ...(letter.sessionId !== undefined ? { sessionId: letter.sessionId } : {}),
        deadLetterSource: this.queue.queueName,
        sequenceNumber: letter.sequenceNumber,
        applicationProperties: {
          ...letter.applicationProperties,
          DeadLetterReason: letter.reason,
          DeadLetterErrorDescription: letter.description,
        },
      });
      try {
        await this.handler(letter.body, context);
        this.queue.markDeadLetterHandled(String(letter.sequenceNumber));
      } catch (error) {
        this.log(
          "error",
          `Dead letter ${letter.sequenceNumber} not recorded; offered again: ${toError(error).message.slice(0, 300)}`,
        );
      }
    }
    return this.pollMs;
  }
}
