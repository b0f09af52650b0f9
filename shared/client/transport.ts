import { createHash } from "node:crypto";

import { requestFingerprint } from "../notifications/fingerprint";
import type { NotificationRequest } from "../notifications/schema";
import { MAX_MESSAGE_BYTES, type OutgoingMessage, type QueuePort } from "../queue/queue-port";
import { type ChangeAnswer, changeMessage, type NotificationChange } from "./changes";
import { RequestValidationError } from "./client-errors";

/**
 * A request is queued as one message, so one larger than Service Bus Standard takes (about
 * 4,700 recipients and up) cannot go by queue: the HTTP endpoint stores it first and queues a
 * reference.
 */
export const MAX_QUEUE_MESSAGE_BYTES = MAX_MESSAGE_BYTES;

/** Room for the broker's own headers and properties beside the body. */
const HEADER_ALLOWANCE_BYTES = 4 * 1024;

/** What a transport reports while it sends. */
export interface SendEvents {
  /** Some requests were accepted (by the queue, or by Herald over HTTP). */
  readonly onSent: (ids: readonly string[]) => void;
  /**
   * Herald refused one because its id is taken in the tenant by different content (only a
   * transport Herald answers can know): nothing of it was queued; sending goes on with the rest.
   */
  readonly onConflict: (id: string) => void;
}

/** Where validated requests go: a queue (Service Bus, the local folder) or the HTTP endpoint. */
export interface NotificationTransport {
  /** Where requests go, for messages to people; never contains a secret. */
  readonly description: string;
  /**
   * True when Herald itself answers each send (HTTP: accepted, replay, conflict or invalid);
   * false for a queue, where a sent request is only on the queue until Herald takes it.
   */
  readonly confirmsAcceptance: boolean;
  /**
   * Sends every request, reporting what was accepted or refused as it goes. Throws on the first
   * failure (the ids reported before it were accepted or refused).
   */
  send(requests: readonly NotificationRequest[], events: SendEvents): Promise<void>;
  /** An update or recall of an accepted request (validated already). */
  change(change: NotificationChange): Promise<ChangeAnswer>;
  close(): Promise<void>;
}

/**
 * The queue message for a LOB request: the body is the request, no `heraldKind` property (that
 * marks Herald's own work items), and the message id `requestMessageId`: the broker's duplicate
 * detection then drops a resend of the same request, but never another tenant's request with
 * the same id, nor a conflicting one (Herald must see that to record the conflict).
 */
export function requestMessage(request: NotificationRequest): OutgoingMessage {
  return {
    body: request,
    messageId: requestMessageId(request),
    ...(request.correlationId !== undefined ? { correlationId: request.correlationId } : {}),
  };
}

/**
 * A request's Service Bus message id: a hash of (tenant, id, content fingerprint), 46
 * characters (Service Bus allows 128). The same request always gets the same one.
 */
export function requestMessageId(request: NotificationRequest): string {
  const digest = createHash("sha256")
    .update(`${request.tenantId.toLowerCase()}\n${request.id}\n${requestFingerprint(request)}`)
    .digest("base64url");
  return `n-${digest}`;
}

/** Requests per `enqueue` call: the adapter packs each call into broker batches. */
const QUEUE_CHUNK = 500;

/**
 * Sends through a QueuePort. A `notBefore` request is enqueued now: the processor records it
 * as `scheduled` (so `status` can see it) and re-schedules it on the queue itself.
 */
export class QueueTransport implements NotificationTransport {
  readonly confirmsAcceptance = false;

  constructor(
    private readonly queue: QueuePort,
    readonly description: string,
    private readonly closeQueue: () => Promise<void> = () => Promise.resolve(),
  ) {}

  async send(requests: readonly NotificationRequest[], events: SendEvents): Promise<void> {
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
      events.onSent(chunk.map((r) => r.id));
    }
  }

  async change(change: NotificationChange): Promise<ChangeAnswer> {
    await this.queue.enqueue([changeMessage(change)]);
    return { kind: "queued" };
  }

  close(): Promise<void> {
    return this.closeQueue();
  }
}
