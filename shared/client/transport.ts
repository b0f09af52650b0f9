import type { NotificationRequest } from "../notifications/schema";
import type { OutgoingMessage, QueuePort } from "../queue/queue-port";
import { RequestValidationError } from "./client-errors";

/**
 * The largest message Service Bus Standard takes (Premium: 100 MB). A request is queued as one
 * message, so a larger one (about 4,700 recipients and up) cannot go by queue: the HTTP endpoint
 * stores it first and queues a reference (https://learn.microsoft.com/azure/service-bus-messaging/service-bus-quotas).
 */
export const MAX_QUEUE_MESSAGE_BYTES = 256 * 1024;

/** Room for the broker's own headers and properties beside the body. */
const HEADER_ALLOWANCE_BYTES = 4 * 1024;

/** Where validated requests go: a queue (Service Bus, the local folder) or the HTTP endpoint. */
export interface NotificationTransport {
  /** Where requests go, for messages to people; never contains a secret. */
  readonly description: string;
  /**
   * Sends every request; calls `onSent` with the ids each time some were accepted. Throws on
   * the first failure (the ids passed to `onSent` before it were sent).
   */
  send(
    requests: readonly NotificationRequest[],
    onSent: (ids: readonly string[]) => void,
  ): Promise<void>;
  close(): Promise<void>;
}

/**
 * The queue message for a LOB request, exactly as the HTTP intake builds it: the body is the
 * request, the message id is the request id (the broker's duplicate detection), and no
 * `heraldKind` property (that marks Herald's own work items).
 */
export function requestMessage(request: NotificationRequest): OutgoingMessage {
  return {
    body: request,
    messageId: request.id,
    ...(request.correlationId !== undefined ? { correlationId: request.correlationId } : {}),
  };
}

/** Requests per `enqueue` call: the adapter packs each call into broker batches. */
const QUEUE_CHUNK = 500;

/**
 * Sends through a QueuePort. A `notBefore` request is enqueued now: the processor records it
 * as `scheduled` (so `status` can see it) and re-schedules it on the queue itself.
 */
export class QueueTransport implements NotificationTransport {
  constructor(
    private readonly queue: QueuePort,
    readonly description: string,
    private readonly closeQueue: () => Promise<void> = () => Promise.resolve(),
  ) {}

  async send(
    requests: readonly NotificationRequest[],
    onSent: (ids: readonly string[]) => void,
  ): Promise<void> {
    const tooLarge = requests
      .map((r, index) => ({ index, bytes: Buffer.byteLength(JSON.stringify(r), "utf8") }))
      .filter((r) => r.bytes > MAX_QUEUE_MESSAGE_BYTES - HEADER_ALLOWANCE_BYTES);
    if (tooLarge.length > 0) {
      throw new RequestValidationError(
        tooLarge.map((r) => ({
          path: `requests[${r.index}]`,
          message: `is ${r.bytes} bytes: a queue message may be at most ${MAX_QUEUE_MESSAGE_BYTES} bytes (Service Bus Standard); send it over HTTP (--endpoint), which stores large requests first, or split its recipients over several requests`,
        })),
        "Request too large for the queue",
      );
    }
    for (let i = 0; i < requests.length; i += QUEUE_CHUNK) {
      const chunk = requests.slice(i, i + QUEUE_CHUNK);
      await this.queue.enqueue(chunk.map(requestMessage));
      onSent(chunk.map((r) => r.id));
    }
  }

  close(): Promise<void> {
    return this.closeQueue();
  }
}
