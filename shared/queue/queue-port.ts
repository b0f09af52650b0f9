/**
 * The only way Herald's domain code puts work on a queue. Production: Service Bus
 * (`service-bus-queue.ts`); `npm start`: a durable local queue; unit tests: in memory.
 */
export interface OutgoingMessage {
  /** JSON-serialisable body. */
  readonly body: unknown;
  /** Becomes the Service Bus message id (broker duplicate detection). */
  readonly messageId?: string;
  readonly correlationId?: string;
  /** Service Bus session (the work queue: the tenant); one consumer holds a session at a time. */
  readonly sessionId?: string;
  /** Routing and diagnostics; `kind` tells internal work items from LOB requests. */
  readonly applicationProperties?: Readonly<Record<string, string | number | boolean>>;
}

export interface QueuePort {
  /** Sends now, in as few broker batches as fit. */
  enqueue(messages: readonly OutgoingMessage[]): Promise<void>;
  /** Sends to become visible no earlier than `at` (scheduled enqueue time). */
  schedule(message: OutgoingMessage, at: Date): Promise<void>;
}

/** Work kinds on the notifications queue. A message without `kind` is a LOB request. */
export const WORK_KIND_PROPERTY = "heraldKind";
