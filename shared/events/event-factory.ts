import type { CloudEvent } from "../model/cloud-event";
import type { Delivery, DeliveryState, NewDelivery } from "../store/delivery-ledger";
import type { RequestKey } from "../store/notification-requests";
import type { FieldError } from "../validation/json-guard";
import { cloudEvent, type EventType } from "./event-types";
import { type RecipientCounts, recipientView } from "./recipient-view";

/**
 * The events of Herald's transitions, built from the row as the transition leaves it. Pure: the
 * caller writes them with the transition and publishes them once the write succeeded.
 */

export interface EventContext {
  /** When the transition was decided (the event's `time`). */
  readonly at: Date;
  readonly correlationId?: string | undefined;
}

/** The final states a delivery ends in, and what each is called as an event. */
const FINAL_TYPES = {
  sent: "herald.delivery.sent",
  unreachable: "herald.delivery.unreachable",
  failed: "herald.delivery.failed",
  rejected: "herald.delivery.rejected",
  duplicate: "herald.delivery.duplicate",
} as const satisfies Partial<Record<DeliveryState, EventType>>;

export type FinalDeliveryState = keyof typeof FINAL_TYPES;

export function isFinalDeliveryState(state: DeliveryState): state is FinalDeliveryState {
  return Object.hasOwn(FINAL_TYPES, state);
}

type DeliveryEventType =
  (typeof FINAL_TYPES)[FinalDeliveryState] | "herald.delivery.installed" | "herald.delivery.read";

function keyOf(row: Pick<Delivery, "tenantId" | "requestId">): RequestKey {
  return { tenantId: row.tenantId, id: row.requestId };
}

/** One recipient's transition, with the status API's fields of the row it leaves behind. */
export function deliveryEvent(
  type: DeliveryEventType,
  row: Omit<Delivery, "etag">,
  context: EventContext,
): CloudEvent {
  const view = recipientView(row);
  return cloudEvent({
    type,
    tenantId: row.tenantId,
    requestId: row.requestId,
    recipientKey: row.recipientKey,
    revision: 1,
    at: context.at,
    correlationId: context.correlationId,
    data: { requestId: row.requestId, tenantId: row.tenantId.toLowerCase(), ...view },
  });
}

/** The event of a row's final state. */
export function finalDeliveryEvent(
  row: Omit<Delivery, "etag"> & { state: FinalDeliveryState },
  context: EventContext,
): CloudEvent {
  return deliveryEvent(FINAL_TYPES[row.state], row, context);
}

/** The event of a row created final (an unknown team, a rejected recipient); none otherwise. */
export function newRowEvents(
  request: RequestKey,
  row: NewDelivery,
  context: EventContext,
): CloudEvent[] {
  const state = row.state ?? "pending";
  if (!isFinalDeliveryState(state)) return [];
  const stamp = context.at.toISOString();
  return [
    finalDeliveryEvent(
      {
        tenantId: request.tenantId,
        requestId: request.id,
        recipientKey: row.recipientKey,
        recipient: row.recipient,
        state,
        attempts: 0,
        lastError: row.lastError,
        createdAt: stamp,
        updatedAt: stamp,
        completedAt: stamp,
      },
      context,
    ),
  ];
}

/** The counts of a request with one recipient, in this final state. */
export function soleRecipientCounts(state: FinalDeliveryState, read = false): RecipientCounts {
  const counts = {
    total: 1,
    pending: 0,
    sent: 0,
    unreachable: 0,
    failed: 0,
    rejected: 0,
    duplicate: 0,
    read: read ? 1 : 0,
  };
  counts[state] = 1;
  return counts;
}

export function completedEvent(
  request: RequestKey,
  outcome: { readonly state: "completed" | "failed"; readonly counts: RecipientCounts },
  context: EventContext,
): CloudEvent {
  return cloudEvent({
    type: "herald.notification.completed",
    tenantId: request.tenantId,
    requestId: request.id,
    revision: 1,
    at: context.at,
    correlationId: context.correlationId,
    data: {
      requestId: request.id,
      tenantId: request.tenantId.toLowerCase(),
      state: outcome.state,
      counts: outcome.counts,
    },
  });
}

/** `completedEvent` for the request of a row that was its only recipient. */
export function soleCompletedEvent(
  row: Pick<Delivery, "tenantId" | "requestId"> & { state: FinalDeliveryState },
  context: EventContext,
): CloudEvent {
  return completedEvent(
    keyOf(row),
    { state: "completed", counts: soleRecipientCounts(row.state) },
    context,
  );
}

export function acceptedEvent(
  request: RequestKey,
  facts: { readonly scheduled: boolean; readonly notBefore?: string; readonly recipients: number },
  context: EventContext,
): CloudEvent {
  return cloudEvent({
    type: "herald.notification.accepted",
    tenantId: request.tenantId,
    requestId: request.id,
    revision: 1,
    at: context.at,
    correlationId: context.correlationId,
    data: {
      requestId: request.id,
      tenantId: request.tenantId.toLowerCase(),
      state: facts.scheduled ? "scheduled" : "queued",
      ...(facts.notBefore !== undefined ? { notBefore: facts.notBefore } : {}),
      recipients: facts.recipients,
    },
  });
}

/** A refused queue message's rejection: one per message (`occurrence`, its id). */
export function rejectedEvent(
  request: RequestKey,
  errors: readonly FieldError[],
  occurrence: string,
  context: EventContext,
): CloudEvent {
  return cloudEvent({
    type: "herald.notification.rejected",
    tenantId: request.tenantId,
    requestId: request.id,
    revision: occurrence,
    at: context.at,
    correlationId: context.correlationId,
    data: {
      requestId: request.id,
      tenantId: request.tenantId.toLowerCase(),
      errors: errors.map((e) => ({ path: e.path, message: e.message })),
    },
  });
}
