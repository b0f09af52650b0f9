import { toError } from "../errors";
import { acceptedEvent, rejectedEvent } from "../events/event-factory";
import type { Logger } from "../logging";
import type { CloudEvent } from "../model/cloud-event";
import { type QueuePort, WORK_KIND_PROPERTY } from "../queue/queue-port";
import type {
  NewRequest,
  NotificationRequestStore,
  RequestKey,
  StoredRequest,
} from "../store/notification-requests";
import { fitsWithin, UNBOUNDED_EVENTS_ROOM, withEvents } from "../store/stored-events";
import { type EventOutbox, requestEvents } from "./event-outbox";
import { requestFingerprint } from "./fingerprint";
import { metric } from "./metrics";
import { plannedRecipientCount } from "./recipients";
import { type FieldError, type NotificationRequest, parseNotificationRequest } from "./schema";
import {
  dispatchMessage,
  type InlineRequest,
  intakeCheckMessage,
  type IntakeCheckWork,
  type QueueMessageInfo,
} from "./work-items";

export type IntakeResult =
  | {
      readonly kind: "accepted";
      readonly id: string;
      readonly tenantId: string;
      readonly scheduledFor?: string;
      /** The same request (same key, same content) was accepted before: nothing new is sent. */
      readonly replay?: boolean;
    }
  | { readonly kind: "invalid"; readonly errors: readonly FieldError[] }
  /** The (tenant, id) is taken by a request with different content: nothing of this one is sent. */
  | { readonly kind: "conflict"; readonly id: string };

export interface IntakeDependencies {
  readonly requests: NotificationRequestStore;
  /** The internal work queue, where the accepted request's `dispatch` reference goes. */
  readonly work: () => QueuePort;
  /** Records and publishes `accepted` and `rejected`. */
  readonly outbox: EventOutbox;
  readonly clock?: () => Date;
  /** The intake queue's max delivery count (the delivery after which it dead-letters). */
  readonly maxDeliveryCount?: number;
  /** How long after an HTTP submission its intake check runs (default 30 s). */
  readonly checkDelayMs?: number;
}

/**
 * Well past an intake's row and enqueue (tens of milliseconds), well inside the work queue's
 * duplicate detection window (10 minutes), where the check's copy of the dispatch is dropped.
 */
const INTAKE_CHECK_DELAY_MS = 30_000;

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
 * A request is identified by (tenant, id) and its content by a fingerprint. The record is
 * written with a conditional insert before anything is queued, so of two submissions of one key
 * exactly one is created; the other is a replay (same content: the same answer, nothing sent
 * twice) or a conflict (different content: refused, and on the queue path counted on the stored
 * request so its sender sees it). A rejected request may be sent again once fixed.
 */
export class NotificationIntake {
  private readonly clock: () => Date;

  constructor(private readonly deps: IntakeDependencies) {
    this.clock = deps.clock ?? (() => new Date());
  }

  /**
   * `POST /api/notifications`. The row and the dispatch are two writes to two services, and the
   * caller of an answer that never came (a 500, a process gone between the two) may never ask
   * again. So an intake check is scheduled on the work queue before anything is stored: it sends
   * the dispatch again later, which the broker drops when the intake sent it, and otherwise
   * dispatches what was stored (or nothing, if nothing was). Either nothing of the request is
   * stored, or it is delivered. The intake queue needs no check: its message stays on the queue
   * until the intake returns, and its redelivery is a replay that queues the dispatch.
   */
  async submit(body: unknown, log: Logger): Promise<IntakeResult> {
    const parsed = parseNotificationRequest(body);
    if (!parsed.ok) {
      log
        .with({ requestId: parsed.id, correlationId: parsed.correlationId })
        .warn("Notification request refused (400)", { errors: summarizeErrors(parsed.errors) });
      return { kind: "invalid", errors: parsed.errors };
    }
    const { tenantId, id: requestId, correlationId } = parsed.request;
    await this.deps.work().schedule(
      intakeCheckMessage({
        tenantId,
        requestId,
        ...(correlationId !== undefined ? { correlationId } : {}),
      }),
      new Date(this.clock().getTime() + (this.deps.checkDelayMs ?? INTAKE_CHECK_DELAY_MS)),
    );
    return this.accept(parsed.request, "http", log);
  }

  /**
   * An intake check (see `submit`): the request's dispatch once more, by reference, with the id
   * the intake gave it. Nothing is read: the broker's duplicate detection is the check.
   */
  async check(work: IntakeCheckWork): Promise<void> {
    await this.deps.work().enqueue([
      dispatchMessage({
        tenantId: work.tenantId,
        requestId: work.requestId,
        ...(work.correlationId !== undefined ? { correlationId: work.correlationId } : {}),
      }),
    ]);
  }

  /** A message on the intake queue: a LOB request (updates and recalls: queue-changes.ts). */
  async fromQueue(body: unknown, info: QueueMessageInfo, log: Logger): Promise<IntakeResult> {
    const parsed = parseNotificationRequest(body);
    const id = parsed.ok ? parsed.request.id : (parsed.id ?? info.messageId);
    const correlationId = parsed.ok ? parsed.request.correlationId : parsed.correlationId;
    const tenantId = (parsed.ok ? parsed.request.tenantId : parsed.tenantId) ?? "";
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
      return this.reject({ tenantId, id }, errors, correlationId, requestLog, info.messageId);
    }
    if (!parsed.ok)
      return this.reject(
        { tenantId, id },
        parsed.errors,
        correlationId,
        requestLog,
        info.messageId,
      );

    try {
      return await this.accept(parsed.request, "queue", log, info.messageId);
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

  /** `occurrence`: the queue message's id, under which a conflict is recorded (HTTP: none). */
  private async accept(
    request: NotificationRequest,
    source: "http" | "queue",
    log: Logger,
    occurrence?: string,
  ): Promise<IntakeResult> {
    const requestLog = log.with({ requestId: request.id, correlationId: request.correlationId });
    const notBefore = request.notBefore !== undefined ? new Date(request.notBefore) : undefined;
    const scheduled = notBefore !== undefined && notBefore.getTime() > this.clock().getTime();
    const fingerprint = requestFingerprint(request);
    const recipientCount = plannedRecipientCount(request.recipients);
    const accepted = this.deps.outbox.record(() => [
      acceptedEvent(
        request,
        { scheduled, notBefore: request.notBefore, recipients: request.recipients.length },
        { at: this.clock(), correlationId: request.correlationId },
      ),
    ]);
    const fresh: NewRequest = {
      id: request.id,
      state: scheduled ? "scheduled" : "queued",
      source,
      tenantId: request.tenantId,
      fingerprint,
      correlationId: request.correlationId,
      message: request.message,
      actions: request.actions,
      summary: request.summary,
      notBefore: request.notBefore,
      recipientCount,
      events: accepted,
    };
    const body = {
      recipients: request.recipients,
      ...(request.includeGuests !== undefined ? { includeGuests: request.includeGuests } : {}),
    };

    let outcome = await this.deps.requests.createWithBody(fresh, body);
    // A rejected request may be sent again once fixed: it takes the rejected row's place.
    for (let attempt = 0; !outcome.created && outcome.request.state === "rejected"; attempt++) {
      if (attempt >= 5) throw new Error("the rejected request kept changing while replaced");
      // The rejection's events stay: a row's events only grow (their readers count them).
      const replaced = await this.deps.requests.replaceRejected(
        outcome.request,
        { ...fresh, events: withEvents(outcome.request.events, accepted) },
        body,
      );
      if (replaced !== "conflict") {
        requestLog.info("A rejected request was sent again, fixed; it replaces the rejection");
        outcome = { created: true, request: replaced };
        break;
      }
      const latest = await this.deps.requests.get(fresh);
      if (latest === undefined) outcome = await this.deps.requests.createWithBody(fresh, body);
      else outcome = { created: false, request: latest };
    }

    const stored = outcome.request;
    if (!outcome.created && stored.fingerprint !== fingerprint) {
      requestLog.warn("Request id already taken in this tenant by different content; refused", {
        source,
      });
      metric(requestLog, "notifications.conflict");
      if (occurrence !== undefined)
        await this.deps.requests.noteConflict(fresh, source, occurrence);
      return { kind: "conflict", id: request.id };
    }
    if (!outcome.created) {
      requestLog.info("Replay of an accepted request", { state: stored.state, source });
      metric(requestLog, "notifications.replayed");
    }
    // Published before the dispatch is queued: a crash after the write is redone by the
    // sender's retry (a replay) or the queue's redelivery, which publish the same event again.
    await this.deps.outbox.publish(
      requestEvents(stored),
      stored.events?.filter((e) => e.type === "herald.notification.accepted"),
    );

    // Queue the dispatch for a new request, and again for a replay that may have found the
    // enqueue unconfirmed (the sender retried because it got no answer) or, on the queue, a
    // request to resume: within the window the broker drops the copy as a duplicate; later,
    // dispatch is idempotent and resumes only what is still pending.
    if (outcome.created || stored.state !== "dispatched" || source === "queue") {
      const message = dispatchMessage({
        tenantId: request.tenantId,
        requestId: request.id,
        ...(request.correlationId !== undefined ? { correlationId: request.correlationId } : {}),
        ...inlineContent(request),
      });
      try {
        if (scheduled) await this.deps.work().schedule(message, notBefore);
        else await this.deps.work().enqueue([message]);
      } catch (error) {
        // Not queued: say so in the status; the sender's retry (a replay) queues it.
        if (outcome.created)
          await this.deps.requests
            .update(stored, { state: "received" }, { ifUnchanged: true })
            .catch(() => undefined);
        throw error;
      }
      if (stored.state === "received")
        await this.deps.requests.update(
          stored,
          { state: scheduled ? "scheduled" : "queued" },
          { ifUnchanged: true },
        );
    }
    if (outcome.created)
      requestLog.info(
        scheduled ? "Notification request scheduled" : "Notification request queued",
        {
          recipients: request.recipients.length,
          notBefore: request.notBefore,
          source,
        },
      );
    return {
      kind: "accepted",
      id: request.id,
      tenantId: request.tenantId,
      ...(scheduled ? { scheduledFor: notBefore.toISOString() } : {}),
      ...(outcome.created ? {} : { replay: true }),
    };
  }

  private async reject(
    key: RequestKey,
    errors: readonly FieldError[],
    correlationId: string | undefined,
    log: Logger,
    occurrence: string,
  ): Promise<IntakeResult> {
    // A rejection names its tenant only when the request did (a GUID): else no one could get it.
    const rejected: readonly CloudEvent[] =
      key.tenantId === ""
        ? []
        : this.deps.outbox.record(() => [
            rejectedEvent(key, errors, occurrence, { at: this.clock(), correlationId }),
          ]);
    const { created, request } = await this.deps.requests.create({
      ...key,
      state: "rejected",
      source: "queue",
      correlationId,
      errors,
      events: rejected,
    });
    if (!created && request.state !== "rejected") {
      // A valid request owns this key: the invalid copy is a conflict, never merged into it.
      log.error("Invalid request reuses the id of an accepted request; refused", {
        errors: summarizeErrors(errors),
      });
      metric(log, "notifications.conflict");
      await this.deps.requests.noteConflict(key, "queue", occurrence);
      return { kind: "invalid", errors };
    }
    const written = created ? request : await this.rejectAgain(request, errors, rejected, log);
    // What the row holds of this refusal (a redelivery built its event anew: the stored one, with
    // its first `time`, is the one published again).
    const ids = new Set(rejected.map((e) => e.id));
    await this.deps.outbox.publish(
      requestEvents(written),
      (written.events ?? []).filter((e) => ids.has(e.id)),
    );
    log.warn("Request rejected", { errors: summarizeErrors(errors) });
    if (created) metric(log, "notifications.rejected");
    return { kind: "invalid", errors };
  }

  /**
   * A rejected request refused again: the new errors and this refusal's event, conditionally. A
   * row that holds as many rejections as its events property has room for records the errors
   * only: a sender resending one broken request in a loop never fills the row so that the fixed
   * request could not be accepted.
   */
  private async rejectAgain(
    current: StoredRequest,
    errors: readonly FieldError[],
    rejected: readonly CloudEvent[],
    log: Logger,
  ): Promise<StoredRequest> {
    let latest: StoredRequest | undefined = current;
    for (let attempt = 0; attempt < 5 && latest !== undefined; attempt++) {
      const fits = fitsWithin(latest.events, rejected, UNBOUNDED_EVENTS_ROOM);
      if (!fits && rejected.length > 0) {
        log.warn("Rejection not recorded as an event: the request holds as many as it keeps", {
          rejections: latest.events?.filter((e) => e.type === rejected[0]!.type).length ?? 0,
        });
        metric(log, "events.rejectionNotRecorded");
      }
      const updated = await this.deps.requests.update(
        latest,
        { errors, events: fits ? withEvents(latest.events, rejected) : latest.events },
        { ifUnchanged: true },
      );
      if (updated !== "conflict") return updated;
      latest = await this.deps.requests.get(latest);
    }
    throw new Error("the rejected request kept changing while its rejection was recorded");
  }
}

/** The largest request content carried in its dispatch (Service Bus Standard: 256 KB a message). */
const MAX_INLINE_CONTENT_CHARS = 64_000;

function inlineContent(request: NotificationRequest): { request?: InlineRequest } {
  const content: InlineRequest = {
    message: request.message,
    recipients: request.recipients,
    ...(request.summary !== undefined ? { summary: request.summary } : {}),
    ...(request.notBefore !== undefined ? { notBefore: request.notBefore } : {}),
    ...(request.includeGuests !== undefined ? { includeGuests: request.includeGuests } : {}),
  };
  return JSON.stringify(content).length <= MAX_INLINE_CONTENT_CHARS ? { request: content } : {};
}

/** Field errors for a log line: paths and reasons, never the offending values. */
export function summarizeErrors(errors: readonly FieldError[]): string {
  return errors
    .slice(0, 10)
    .map((e) => `${e.path}: ${e.message}`)
    .join("; ");
}
