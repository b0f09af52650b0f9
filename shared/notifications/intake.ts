import { toError } from "../errors";
import type { Logger } from "../logging";
import { type QueuePort, WORK_KIND_PROPERTY } from "../queue/queue-port";
import type { NotificationRequestStore } from "../store/notification-requests";
import { metric } from "./metrics";
import { type FieldError, type NotificationRequest, parseNotificationRequest } from "./schema";
import type { NotificationStatus, NotificationStatusReader } from "./status";
import { dispatchMessage, type QueueMessageInfo } from "./work-items";

export type IntakeResult =
  | { readonly kind: "accepted"; readonly id: string; readonly scheduledFor?: string }
  | { readonly kind: "invalid"; readonly errors: readonly FieldError[] }
  | {
      readonly kind: "duplicate";
      readonly id: string;
      readonly status: NotificationStatus | undefined;
    };

export interface IntakeDependencies {
  readonly requests: NotificationRequestStore;
  /** The internal work queue, where the accepted request's `dispatch` reference goes. */
  readonly work: () => QueuePort;
  readonly status: NotificationStatusReader;
  readonly clock?: () => Date;
  /** The intake queue's max delivery count (the delivery after which it dead-letters). */
  readonly maxDeliveryCount?: number;
}

/**
 * Application properties that mark Herald's own work. The intake queue is LOB-facing: a message
 * that carries one is a forgery (or a misrouted internal message) and is refused, never run.
 */
const INTERNAL_MARKERS = [WORK_KIND_PROPERTY] as const;

/**
 * Where notification requests come in, from both doors: `POST /api/notifications` and the
 * LOB-facing intake queue. Either way a valid request is stored with its recipients (the claim
 * check) and a `dispatch` reference to it goes on the internal work queue, in the tenant's
 * session (scheduled for `notBefore` when that is in the future). Nothing here calls Teams.
 *
 * The record is written first with state `received`, so a duplicate id is refused (409) even
 * while the first copy is on its way; a `received` record whose enqueue was never confirmed
 * (the process died in between) is enqueued again by the caller's retry instead of refused.
 */
export class NotificationIntake {
  private readonly clock: () => Date;

  constructor(private readonly deps: IntakeDependencies) {
    this.clock = deps.clock ?? (() => new Date());
  }

  /** `POST /api/notifications`. */
  async submit(body: unknown, log: Logger): Promise<IntakeResult> {
    const parsed = parseNotificationRequest(body);
    if (!parsed.ok) {
      log
        .with({ requestId: parsed.id, correlationId: parsed.correlationId })
        .warn("Notification request refused (400)", { errors: summarizeErrors(parsed.errors) });
      return { kind: "invalid", errors: parsed.errors };
    }
    return this.accept(parsed.request, "http", log);
  }

  /** A message on the intake queue: a LOB request, and nothing else. */
  async fromQueue(body: unknown, info: QueueMessageInfo, log: Logger): Promise<IntakeResult> {
    const parsed = parseNotificationRequest(body);
    const id = parsed.ok ? parsed.request.id : (parsed.id ?? info.messageId);
    const correlationId = parsed.ok ? parsed.request.correlationId : parsed.correlationId;
    const requestLog = log.with({ requestId: id, correlationId });

    const marker = INTERNAL_MARKERS.find((m) => Object.hasOwn(info.applicationProperties, m));
    if (marker !== undefined) {
      const errors: FieldError[] = [
        {
          path: `(applicationProperties.${marker})`,
          message:
            "is Herald's internal work marker: the notifications queue takes notification requests only",
        },
      ];
      requestLog.error("Refused a message carrying Herald's internal work marker", {
        marker,
        // The value is the forger's text: its kind only, cut short.
        value: String(info.applicationProperties[marker]).slice(0, 40),
      });
      metric(requestLog, "notifications.refused");
      return this.reject(id, errors, correlationId, requestLog);
    }
    if (!parsed.ok) return this.reject(id, parsed.errors, correlationId, requestLog);

    try {
      return await this.accept(parsed.request, "queue", log);
    } catch (error) {
      const last =
        this.deps.maxDeliveryCount !== undefined &&
        info.deliveryCount >= this.deps.maxDeliveryCount;
      requestLog.error(
        last
          ? "Request could not be accepted on its last delivery; the message goes to the dead-letter queue"
          : "Request could not be accepted; the message will be redelivered",
        { error: toError(error).message.slice(0, 500), deliveryCount: info.deliveryCount },
      );
      throw error;
    }
  }

  private async accept(
    request: NotificationRequest,
    source: "http" | "queue",
    log: Logger,
  ): Promise<IntakeResult> {
    const requestLog = log.with({ requestId: request.id, correlationId: request.correlationId });
    const notBefore = request.notBefore !== undefined ? new Date(request.notBefore) : undefined;
    const scheduled = notBefore !== undefined && notBefore.getTime() > this.clock().getTime();

    const { created, request: stored } = await this.deps.requests.createWithBody(
      {
        id: request.id,
        state: "received",
        source,
        tenantId: request.tenantId,
        correlationId: request.correlationId,
        message: request.message,
        summary: request.summary,
        notBefore: request.notBefore,
      },
      { recipients: request.recipients },
    );
    const sameTenant = stored.tenantId?.toLowerCase() === request.tenantId.toLowerCase();
    // A queue copy of a request already accepted for this tenant (a LOB retry, a redelivery):
    // queue its dispatch again. Within the window the broker drops it as a duplicate; later,
    // dispatch is idempotent and resumes only what is still pending.
    const resume = !created && source === "queue" && sameTenant && stored.state !== "rejected";
    if (!created && stored.state !== "received" && !resume) {
      requestLog.info("Duplicate notification request id", { state: stored.state });
      metric(requestLog, "notifications.duplicate");
      return {
        kind: "duplicate",
        id: request.id,
        status: await this.deps.status.get(request.id),
      };
    }

    const message = dispatchMessage({
      tenantId: request.tenantId,
      requestId: request.id,
      ...(request.correlationId !== undefined ? { correlationId: request.correlationId } : {}),
    });
    if (scheduled) await this.deps.work().schedule(message, notBefore);
    else await this.deps.work().enqueue([message]);
    // Conditional: if the dispatch already moved the request on, its state stands.
    if (stored.state === "received")
      await this.deps.requests.update(
        stored,
        { state: scheduled ? "scheduled" : "queued" },
        { ifUnchanged: true },
      );
    requestLog.info(scheduled ? "Notification request scheduled" : "Notification request queued", {
      recipients: request.recipients.length,
      notBefore: request.notBefore,
      source,
    });
    return {
      kind: "accepted",
      id: request.id,
      ...(scheduled ? { scheduledFor: notBefore.toISOString() } : {}),
    };
  }

  private async reject(
    id: string,
    errors: readonly FieldError[],
    correlationId: string | undefined,
    log: Logger,
  ): Promise<IntakeResult> {
    const { created, request } = await this.deps.requests.create({
      id,
      state: "rejected",
      source: "queue",
      correlationId,
      errors,
    });
    if (!created && request.state !== "rejected") {
      // A valid request owns this id already; this invalid copy must not overwrite it.
      log.error("Invalid request reuses the id of an accepted request; dropped", {
        errors: summarizeErrors(errors),
      });
    } else {
      log.warn("Request rejected", { errors: summarizeErrors(errors) });
      if (created) metric(log, "notifications.rejected");
    }
    return { kind: "invalid", errors };
  }
}

/** Field errors for a log line: paths and reasons, never the offending values. */
export function summarizeErrors(errors: readonly FieldError[]): string {
  return errors
    .slice(0, 10)
    .map((e) => `${e.path}: ${e.message}`)
    .join("; ");
}
