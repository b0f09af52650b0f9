import { toError } from "../errors";
import {
  finalDeliveryEvent,
  type FinalDeliveryState,
  soleCompletedEvent,
} from "../events/event-factory";
import { type Logger, recipientToken } from "../logging";
import type { CloudEvent } from "../model/cloud-event";
import type { QueuePort } from "../queue/queue-port";
import {
  type Delivery,
  type DeliveryLedger,
  type DeliveryPatch,
  type DeliveryState,
  FINAL_STATES,
} from "../store/delivery-ledger";
import { withEvents } from "../store/stored-events";
import type { UserReferenceStore } from "../store/user-references";
import type { DeliveryClaims } from "./delivery-claims";
import type { EventOutbox } from "./event-outbox";
import { metric } from "./metrics";
import type { Decision } from "./retry-policy";
import { scheduledAgain } from "./starting-row";
import { deliveryMessage, type DeliveryWork, type QueueMessageInfo } from "./work-items";

export type DeliveryResult =
  | { readonly kind: "sent" | "unreachable" | "failed" | "rejected" | "cancelled" }
  /** Another recipient of the request is the same person: they get that one copy. */
  | { readonly kind: "same-person"; readonly as: string }
  /** A failure that may pass: the next attempt is scheduled. */
  | { readonly kind: "retrying"; readonly at: Date }
  /** Pacing, a wait or another invocation's claim: the same attempt is scheduled for later. */
  | { readonly kind: "deferred"; readonly at: Date }
  /** Already final (a redelivery or a duplicate request): nothing sent. */
  | { readonly kind: "duplicate"; readonly state: DeliveryState };

/**
 * A state a delivery ends in, `duplicate` included (a second name of one person); `recalled` is
 * written by a recall (copy-ledger.ts), never by a delivery.
 */
export type EndState = Exclude<FinalDeliveryState, "recalled">;

/** What the events of a delivery's transition need from its work item. */
export type EventSource = Pick<DeliveryWork, "correlationId" | "sole">;

/** How a failed call is written down, whatever the policy decides. */
export interface FailureRecord {
  /** Written with every decision (the failure's details). */
  readonly patch: DeliveryPatch;
  /** Written as well when the work is retried (the row back to `pending`, say). */
  readonly retryPatch?: DeliveryPatch;
  /** The work item of the next attempt (its `attempt` comes from the decision). */
  readonly next: DeliveryWork;
  readonly retryMessage: string;
  readonly properties: Record<string, unknown>;
}

export interface DeliveryRecorderDependencies {
  readonly ledger: DeliveryLedger;
  readonly users: Pick<UserReferenceStore, "markStatus" | "setConversationId">;
  readonly queue: () => QueuePort;
  readonly claims: DeliveryClaims;
  readonly outbox: EventOutbox;
  readonly clock: () => Date;
  /**
   * The queue's max delivery count: on that delivery an unexpected error is recorded as
   * `failed` before the broker dead-letters the message.
   */
  readonly maxDeliveryCount: number;
}

/**
 * Writes what happened to a delivery on its ledger row (and, for a retry or a deferral, the
 * work item that comes back): final states, where the first final state wins; the policy's
 * decisions for failed calls; the unexpected, before the broker redelivers.
 */
export class DeliveryRecorder {
  constructor(private readonly deps: DeliveryRecorderDependencies) {}

  /**
   * The row final in `state`, unless a concurrent copy made it final first. The same write
   * records the state's event (and, for a request's only recipient, the request's `completed`),
   * published once it succeeded.
   */
  async finish(
    entry: Delivery,
    state: EndState,
    log: Logger,
    patch: DeliveryPatch,
    source: EventSource,
  ): Promise<DeliveryResult> {
    const at = this.deps.clock();
    let current = entry;
    for (let attempt = 0; attempt < 5; attempt++) {
      const final: DeliveryPatch & { state: EndState } = {
        ...patch,
        state,
        claimedBy: undefined,
        claimHolder: undefined,
        claimSession: undefined,
        claimExpiresAt: undefined,
        nextAttemptAt: undefined,
        completedAt: at.toISOString(),
      };
      const fresh = this.deps.outbox.record(() =>
        finalEvents({ ...current, ...final }, source, at),
      );
      const updated = await this.deps.ledger.update(current, {
        ...final,
        events: withEvents(current.events, fresh),
      });
      if (updated.kind === "written") {
        await this.deps.outbox.publish(updated.row, fresh);
        break;
      }
      // Someone touched the row meanwhile (a concurrent copy): the first final state wins.
      const latest = await this.latest(entry);
      if (latest === undefined) break;
      if (FINAL_STATES.has(latest.state)) {
        if (state === "sent" && latest.state !== "sent")
          log.warn("Sent, but a concurrent copy had already recorded another outcome", {
            recorded: latest.state,
          });
        return { kind: "duplicate", state: latest.state };
      }
      current = latest;
    }
    // The caller logged a second name of one person; it is no failure.
    if (state === "duplicate") return { kind: "same-person", as: patch.duplicateOf ?? "" };
    if (state === "sent") log.info("Notification delivered", { activityId: patch.activityId });
    else
      log.warn(`Notification ${state}`, {
        state,
        lastError: patch.lastError,
        status: patch.lastStatus,
      });
    metric(log, `notifications.${state}`);
    return { kind: state };
  }

  /** A second name of a person another recipient of the request reaches: no second copy. */
  samePerson(
    row: Delivery,
    of: string,
    log: Logger,
    patch: { teamsUserId?: string },
    work: DeliveryWork,
  ): Promise<DeliveryResult> {
    log.info("Another recipient of this request is the same person; no second copy", {
      sameAs: recipientToken(of),
    });
    metric(log, "notifications.samePerson");
    return this.finish(
      row,
      "duplicate",
      log,
      { ...patch, duplicateOf: of, lastError: undefined },
      work,
    );
  }

  /** A failed call's decision (retry-policy.ts) on the row: the next attempt, or the end. */
  async apply(
    entry: Delivery,
    decision: Decision,
    log: Logger,
    record: FailureRecord,
  ): Promise<DeliveryResult> {
    if (decision.kind === "retry") return this.retry(entry, decision, log, record);
    if (decision.kind === "unreachable" && decision.userBlocked !== undefined)
      await this.markBlocked(entry, decision.userBlocked);
    if (decision.kind === "failed" && decision.alert !== undefined) log.error(decision.alert);
    const patch = { ...record.patch, lastError: decision.reason };
    return this.finish(entry, decision.kind, log, patch, record.next);
  }

  /** The same attempt again at `at`, as a fresh message (pacing, a wait, a claim that stands). */
  async defer(
    work: DeliveryWork,
    at: Date,
    log: Logger,
    message: string,
    properties: Record<string, unknown> = {},
  ): Promise<DeliveryResult> {
    await this.deps.queue().schedule(deliveryMessage(scheduledAgain(work), { unique: true }), at);
    log.info(message, { ...properties, at: at.toISOString() });
    return { kind: "deferred", at };
  }

  /**
   * An unexpected error (storage down, a bug) before the broker redelivers: noted on the row.
   * The claim, if any, stays: the redelivery of this same message recognises it as its own. On
   * the last delivery the row is recorded `failed` instead: nothing will come back for it.
   */
  async unexpected(
    work: DeliveryWork,
    key: string,
    error: unknown,
    info: QueueMessageInfo,
    log: Logger,
  ): Promise<void> {
    const message = toError(error).message.slice(0, 500);
    const last = info.deliveryCount >= this.deps.maxDeliveryCount;
    log.error(
      last
        ? "Delivery failed unexpectedly on its last delivery; recorded failed, the message goes to the dead-letter queue"
        : "Delivery failed unexpectedly; the message will be redelivered",
      { error: message, deliveryCount: info.deliveryCount },
    );
    try {
      const latest = await this.deps.ledger.get(
        { tenantId: work.tenantId, id: work.requestId },
        key,
      );
      if (latest === undefined || FINAL_STATES.has(latest.state)) return;
      if (!last) {
        await this.deps.ledger.update(latest, {
          lastError: `unexpected: ${message} (delivery ${info.deliveryCount})`,
          deliveryCount: info.deliveryCount,
        });
        return;
      }
      // A row `sending` under another invocation's standing claim records its own outcome.
      const own = this.deps.claims.isOwn(latest, info);
      if (!own && this.deps.claims.standing(latest, info).kind === "held") return;
      await this.finish(
        latest,
        "failed",
        log,
        {
          deliveryCount: info.deliveryCount,
          lastError: `unexpected: ${message} (delivery ${info.deliveryCount}, the last: dead-lettered)`,
        },
        work,
      );
    } catch {
      // The store is what failed, most likely: the broker's redelivery (or dead letter) remains.
    }
  }

  /**
   * The next attempt, scheduled after the decision's delay, with the failure and the retry time
   * on the row. Scheduled first: a crash before the ledger update then costs a repeated attempt,
   * not a lost one.
   */
  private async retry(
    entry: Delivery,
    decision: Extract<Decision, { kind: "retry" }>,
    log: Logger,
    record: FailureRecord,
  ): Promise<DeliveryResult> {
    const at = new Date(this.deps.clock().getTime() + decision.delayMs);
    await this.deps
      .queue()
      .schedule(deliveryMessage({ ...scheduledAgain(record.next), attempt: decision.attempt }), at);
    await this.deps.ledger.update(entry, {
      ...record.patch,
      ...record.retryPatch,
      lastError: decision.reason,
      nextAttemptAt: at.toISOString(),
    });
    log.warn(record.retryMessage, {
      ...record.properties,
      nextAttempt: decision.attempt,
      at: at.toISOString(),
    });
    metric(log, "notifications.retried");
    return { kind: "retrying", at };
  }

  private async markBlocked(
    entry: Delivery,
    blocked: { readonly code: string; readonly forgetConversation: boolean },
  ): Promise<void> {
    const teamsUserId = entry.teamsUserId ?? "";
    await this.deps.users.markStatus(entry.tenantId, teamsUserId, "unreachable", blocked.code);
    if (blocked.forgetConversation)
      await this.deps.users.setConversationId(entry.tenantId, teamsUserId, undefined);
  }

  private latest(entry: Delivery): Promise<Delivery | undefined> {
    return this.deps.ledger.get(
      { tenantId: entry.tenantId, id: entry.requestId },
      entry.recipientKey,
    );
  }
}

/** A final state's event, and the request's `completed` when this was its only recipient. */
export function finalEvents(
  row: Omit<Delivery, "etag"> & { state: EndState },
  source: EventSource,
  at: Date,
): CloudEvent[] {
  const context = { at, correlationId: source.correlationId };
  const events = [finalDeliveryEvent(row, context)];
  if (source.sole === true) events.push(soleCompletedEvent(row, context));
  return events;
}
