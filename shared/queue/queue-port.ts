/**
 * The only way Herald's domain code puts work on a queue. Production: Service Bus
 * (`service-bus-queue.ts`); `npm start`: the local broker (`local-queue.ts`); unit tests: in memory.
 */
export interface OutgoingMessage {
  /** JSON-serialisable body. */
  readonly body: unknown;
  /** Becomes the Service Bus message id (broker duplicate detection). */
  readonly messageId?: string;
  readonly correlationId?: string;
  /** The body's media type; `application/json` unless given (events: CloudEvents JSON). */
  readonly contentType?: string;
  /** Required on the session-enabled work queue: the tenant (see work-items.ts `sessionOf`). */
  readonly sessionId?: string;
  /** Routing and diagnostics; `kind` tells internal work items from LOB requests. */
  readonly applicationProperties?: Readonly<Record<string, string | number | boolean>>;
}

/**
 * The largest message Service Bus Standard takes, and the largest batch (Premium: 100 MB)
 * (https://learn.microsoft.com/azure/service-bus-messaging/service-bus-quotas).
 */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** Service Bus' limit on a session id. */
export const MAX_SESSION_ID_LENGTH = 128;

export interface QueuePort {
  /** Sends now, in as few broker batches as fit. */
  enqueue(messages: readonly OutgoingMessage[]): Promise<void>;
  /** Sends to become visible no earlier than `at` (scheduled enqueue time). */
  schedule(message: OutgoingMessage, at: Date): Promise<void>;
}

/**
 * The application property that names a work item's kind on the internal work queue. On the
 * LOB-facing intake queue it marks a forgery: such a message is refused, never run.
 */
export const WORK_KIND_PROPERTY = "heraldKind";
