import { completedEvent, newRowEvents } from "../events/event-factory";
import { CountsTally } from "../events/recipient-view";
import type { Logger } from "../logging";
import { WORK_KIND_PROPERTY } from "../queue/queue-port";
import type { DeadLetterCopies } from "../store/dead-letter-copies";
import { type Delivery, type DeliveryLedger, FINAL_STATES } from "../store/delivery-ledger";
import type { NotificationRequestStore, RequestKey } from "../store/notification-requests";
import { withEvents } from "../store/stored-events";
import type { CompletionChecker } from "./completion-check";
import { type EventSource, finalEvents } from "./delivery-recorder";
import { type EventOutbox, requestEvents } from "./event-outbox";
import { metric } from "./metrics";
import { recipientKey, splitRecipients } from "./recipients";
import { parseNotificationRequest } from "./schema";
import {
  deliveryWorkSchema,
  dispatchWorkSchema,
  intakeCheckWorkSchema,
  type QueueMessageInfo,
  WORK_KINDS,
} from "./work-items";

/** A message read from a dead-letter subqueue, as its trigger hands it over. */
export interface DeadLetteredMessage extends QueueMessageInfo {
  readonly body: unknown;
  readonly correlationId?: string | undefined;
  readonly sessionId?: string | undefined;
  readonly sequence?: string | undefined;
  readonly applicationProperties: Readonly<Record<string, unknown>>;
}

export interface DeadLetterRecorderDependencies {
  readonly requests: NotificationRequestStore;
  readonly ledger: DeliveryLedger;
  readonly copies: DeadLetterCopies;
  readonly outbox: EventOutbox;
  /** Looks at a request whose dispatch died: its `completed` once every recipient is final. */
  readonly completion: Pick<CompletionChecker, "check">;
  readonly clock?: () => Date;
}

/** The broker writes why it dead-lettered a message into these application properties. */
function reasonOf(message: DeadLetteredMessage): { reason: string; description: string } {
  const p = message.applicationProperties;
  const pick = (...names: string[]) => {
    for (const name of names) if (typeof p[name] === "string") return p[name].slice(0, 500);
    return "";
  };
  return {
    reason: pick("DeadLetterReason", "deadLetterReason") || "dead-lettered",
    description: pick("DeadLetterErrorDescription", "deadLetterErrorDescription"),
  };
}

/**
 * Reads what reached a dead-letter subqueue (the intake's or the work queue's) and makes it
 * final where Herald's records would otherwise wait forever: a dead-lettered delivery ends its
 * recipient `failed` with the broker's reason; a dead-lettered dispatch (or an intake message
 * whose request was never queued) ends the request `failed` and every recipient still pending
 * `failed`. Other work (welcomes, roster syncs, relays) has no request to finish. Every message
 * is kept (DeadLetterCopies) for the operator. Idempotent: a second read changes nothing more.
 */
export class DeadLetterRecorder {
  private readonly clock: () => Date;

  constructor(private readonly deps: DeadLetterRecorderDependencies) {
    this.clock = deps.clock ?? (() => new Date());
  }

  async record(
    queue: { readonly kind: "intake" | "work"; readonly name: string },
    message: DeadLetteredMessage,
    log: Logger,
  ): Promise<string> {
    const { reason, description } = reasonOf(message);
    const because = `dead-lettered by the broker (${reason}${description !== "" ? `: ${description}` : ""})`;
    const outcome =
      queue.kind === "intake"
        ? await this.intake(message, because)
        : await this.work(message, because, log);
    await this.deps.copies.keep({
      queueName: queue.name,
      messageId: message.messageId,
      sequence: message.sequence ?? "",
      sessionId: message.sessionId,
      correlationId: message.correlationId,
      reason,
      description,
      deliveryCount: message.deliveryCount,
      applicationProperties: message.applicationProperties,
      body: message.body,
      recordedAt: this.clock().toISOString(),
      outcome,
    });
    log.error("Dead-lettered message recorded and kept", { queue: queue.name, reason, outcome });
    metric(log, "notifications.deadLettered");
    return outcome;
  }

  private async work(message: DeadLetteredMessage, because: string, log: Logger): Promise<string> {
    const kind = message.applicationProperties[WORK_KIND_PROPERTY];
    if (kind === WORK_KINDS.delivery) {
      const work = deliveryWorkSchema.safeParse(message.body);
      if (!work.success) return "kept (unreadable delivery)";
      const key = { tenantId: work.data.tenantId, id: work.data.requestId };
      const rk = recipientKey(work.data.recipient);
      const row =
        (await this.deps.ledger.get(key, rk)) ??
        (await this.deps.ledger.ensure(key, rk, work.data.recipient));
      return (await this.fail(row, message, because, work.data))
        ? "recipient failed"
        : "recipient already final";
    }
    if (kind === WORK_KINDS.dispatch) {
      const work = dispatchWorkSchema.safeParse(message.body);
      if (!work.success) return "kept (unreadable dispatch)";
      const outcome = await this.failRequest(
        { tenantId: work.data.tenantId, id: work.data.requestId },
        message,
        because,
        work.data.request?.recipients,
      );
      await this.deps.completion.check(
        {
          tenantId: work.data.tenantId,
          requestId: work.data.requestId,
          correlationId: work.data.correlationId,
          check: 1,
        },
        log,
      );
      return outcome;
    }
    if (kind === WORK_KINDS.intakeCheck) {
      const work = intakeCheckWorkSchema.safeParse(message.body);
      if (!work.success) return "kept (unreadable intake check)";
      const key = { tenantId: work.data.tenantId, id: work.data.requestId };
      const stored = await this.deps.requests.get(key);
      if (stored === undefined) return "kept (the request was never stored)";
      // `received`: the intake's own enqueue failed, and now its check could not send either.
      if (stored.state !== "received") return "kept (the request's dispatch was queued)";
      return this.failRequest(key, message, because);
    }
    return `kept (${typeof kind === "string" ? kind.slice(0, 40) : "unknown"} work has no request)`;
  }

  private async intake(message: DeadLetteredMessage, because: string): Promise<string> {
    const parsed = parseNotificationRequest(message.body);
    if (!parsed.ok) return "kept (not a valid request)";
    const key = { tenantId: parsed.request.tenantId, id: parsed.request.id };
    const stored = await this.deps.requests.get(key);
    if (stored === undefined) {
      // Final at once, with nobody reached: its `completed` says so.
      const events = this.deps.outbox.record(() => [
        completedEvent(
          key,
          { state: "failed", counts: new CountsTally().value },
          { at: this.clock(), correlationId: parsed.request.correlationId },
        ),
      ]);
      const { request } = await this.deps.requests.create({
        ...key,
        state: "failed",
        source: "queue",
        correlationId: parsed.request.correlationId,
        lastError: because,
        events,
      });
      await this.deps.outbox.publish(requestEvents(request));
      return "request failed (never stored)";
    }
    // A request that was queued goes on through its own work; only one never queued is stuck.
    if (stored.state !== "received") return "kept (the request was accepted)";
    return this.failRequest(key, message, because, parsed.request.recipients);
  }

  private async failRequest(
    key: RequestKey,
    message: DeadLetteredMessage,
    because: string,
    recipients?: readonly unknown[],
  ): Promise<string> {
    // Recipients that never got a row (the dispatch died before writing them) end `failed` too,
    // so the status lists everyone the request named. A team or group is one row: its members
    // were never expanded.
    const named = recipients ?? (await this.storedRecipients(key));
    const { deliverable } = splitRecipients(named);
    const at = this.clock();
    const created = await this.deps.ledger.create(
      key,
      [...deliverable].map(([recipientKey, recipient]) => {
        const row = { recipientKey, recipient, state: "failed" as const, lastError: because };
        return { ...row, events: this.deps.outbox.record(() => newRowEvents(key, row, { at })) };
      }),
    );
    let failed = 0;
    let rows = 0;
    let finalBefore = 0;
    for await (const row of this.deps.ledger.list(key)) {
      rows += 1;
      if (FINAL_STATES.has(row.state)) finalBefore += 1;
      if (await this.fail(row, message, because)) failed += 1;
    }
    // Every recipient was already final by its own delivery (the dispatch died after its work,
    // before its last write): the request was dispatched; calling it failed would contradict
    // what its recipients got.
    const done = created === 0 && rows > 0 && finalBefore === rows;
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await this.deps.requests.get(key);
      if (stored === undefined) return "kept (no stored request)";
      if (stored.state === "dispatched" || stored.state === "failed" || stored.state === "rejected")
        break;
      const updated = await this.deps.requests.update(
        stored,
        done
          ? { state: "dispatched", recipientCount: stored.recipientCount ?? rows }
          : { state: "failed", lastError: because },
        { ifUnchanged: true },
      );
      if (updated !== "conflict") break;
    }
    if (done) return "request already delivered (every recipient final)";
    return `request failed (${failed} recipient${failed === 1 ? "" : "s"} failed)`;
  }

  private async storedRecipients(key: RequestKey): Promise<readonly unknown[]> {
    const stored = await this.deps.requests.get(key);
    if (stored === undefined) return [];
    const body = (await this.deps.requests.readBody(stored)) as
      { recipients?: unknown } | undefined;
    return Array.isArray(body?.recipients) ? (body.recipients as unknown[]) : [];
  }

  /**
   * Ends a row `failed` unless it is final, or `sending` under a live claim of another message
   * (that invocation records its own outcome). True when this call failed it.
   */
  private async fail(
    row: Delivery,
    message: DeadLetteredMessage,
    because: string,
    source: EventSource = {},
  ): Promise<boolean> {
    let current: Delivery | undefined = row;
    for (let attempt = 0; attempt < 5 && current !== undefined; attempt++) {
      if (FINAL_STATES.has(current.state)) {
        // Final, maybe by the delivery itself whose publish kept failing: publish it here.
        await this.deps.outbox.publish(current);
        return false;
      }
      const liveClaim =
        current.state === "sending" &&
        current.claimExpiresAt !== undefined &&
        Date.parse(current.claimExpiresAt) > this.clock().getTime() &&
        !(current.claimedBy ?? "").startsWith(`${message.messageId}#`);
      if (liveClaim) return false;
      const at = this.clock();
      const patch = {
        state: "failed" as const,
        lastError: because,
        claimedBy: undefined,
        claimExpiresAt: undefined,
        nextAttemptAt: undefined,
        completedAt: at.toISOString(),
      };
      const row: Delivery = current;
      const fresh = this.deps.outbox.record(() => finalEvents({ ...row, ...patch }, source, at));
      const updated = await this.deps.ledger.update(current, {
        ...patch,
        events: withEvents(current.events, fresh),
      });
      if (updated.kind === "written") {
        await this.deps.outbox.publish(updated.row, fresh);
        return true;
      }
      current = await this.deps.ledger.get(
        { tenantId: current.tenantId, id: current.requestId },
        current.recipientKey,
      );
    }
    return false;
  }
}
