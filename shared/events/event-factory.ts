import type { CloudEvent } from "../model/cloud-event";
import type { Delivery, DeliveryState, NewDelivery } from "../store/delivery-ledger";
import { storedErrors } from "../store/limits";
import type { RequestKey } from "../store/notification-requests";
import type { RecordedAction } from "../store/recorded-actions";
import type { FieldError } from "../validation/json-guard";
import { cloudEvent, type EventData, type EventType } from "./event-types";
import { CountsTally, type RecipientCounts, recipientView } from "./recipient-view";

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
  cancelled: "herald.delivery.cancelled",
  recalled: "herald.delivery.recalled",
} as const satisfies Partial<Record<DeliveryState, EventType>>;

export type FinalDeliveryState = keyof typeof FINAL_TYPES;

export function isFinalDeliveryState(state: DeliveryState): state is FinalDeliveryState {
  return Object.hasOwn(FINAL_TYPES, state);
}

type DeliveryEventType =
  | (typeof FINAL_TYPES)[FinalDeliveryState]
  | "herald.delivery.installed"
  | "herald.delivery.read"
  | "herald.delivery.updated";

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
    // A copy's update is one event per revision it reaches (the id is stable per transition),
    // and one per per-recipient update it shows: only those ids name the override's sequence.
    revision:
      type === "herald.delivery.updated" && row.override !== undefined
        ? `${row.revision ?? 1}/override:${row.override}`
        : (row.revision ?? 1),
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
  const tally = new CountsTally();
  tally.add(state, read);
  return tally.value;
}

/** An event of the request itself (no subject): its identity, then what `data` adds. */
function requestEvent<T extends RequestEventType>(
  type: T,
  request: RequestKey,
  revision: string | number,
  context: EventContext,
  data: Omit<EventData<T>, "requestId" | "tenantId">,
): CloudEvent {
  return cloudEvent({
    type,
    tenantId: request.tenantId,
    requestId: request.id,
    revision,
    at: context.at,
    correlationId: context.correlationId,
    data: {
      requestId: request.id,
      tenantId: request.tenantId.toLowerCase(),
      ...data,
    } as EventData<T>,
  });
}

type RequestEventType =
  "herald.notification.accepted" | "herald.notification.rejected" | "herald.notification.completed";

export function completedEvent(
  request: RequestKey,
  outcome: {
    readonly state: "completed" | "failed" | "recalled";
    readonly counts: RecipientCounts;
  },
  context: EventContext,
): CloudEvent {
  return requestEvent("herald.notification.completed", request, 1, context, {
    state: outcome.state,
    counts: outcome.counts,
  });
}

/**
 * `completedEvent` for the request of a row that was its only recipient. A row ends `cancelled`
 * only because its request was recalled first: the request is then `recalled`, as its status
 * says, not `completed`.
 */
export function soleCompletedEvent(
  row: Pick<Delivery, "tenantId" | "requestId"> & { state: FinalDeliveryState },
  context: EventContext,
): CloudEvent {
  const state = row.state === "cancelled" || row.state === "recalled" ? "recalled" : "completed";
  return completedEvent(keyOf(row), { state, counts: soleRecipientCounts(row.state) }, context);
}

export function acceptedEvent(
  request: RequestKey,
  facts: { readonly scheduled: boolean; readonly notBefore?: string; readonly recipients: number },
  context: EventContext,
): CloudEvent {
  return requestEvent("herald.notification.accepted", request, 1, context, {
    state: facts.scheduled ? "scheduled" : "queued",
    ...(facts.notBefore !== undefined ? { notBefore: facts.notBefore } : {}),
    recipients: facts.recipients,
  });
}

/**
 * The field errors a rejection event names: the first few, cut, and how many more there were (the
 * status API has the request's stored list). An event stays small whatever the request held.
 */
export const MAX_EVENT_ERRORS = 10;

/** A refused queue message's rejection: one per message (`occurrence`, its id). */
export function rejectedEvent(
  request: RequestKey,
  errors: readonly FieldError[],
  occurrence: string,
  context: EventContext,
): CloudEvent {
  return requestEvent("herald.notification.rejected", request, occurrence, context, {
    errors: storedErrors(errors, MAX_EVENT_ERRORS),
  });
}

/** A recipient's click on a button of the card: one per recipient and verb (its id says so). */
export function cardActionEvent(
  row: Omit<Delivery, "etag">,
  action: RecordedAction & { readonly inputs: Record<string, unknown>; readonly revision: number },
  context: EventContext,
): CloudEvent {
  return cloudEvent({
    type: "herald.card.action",
    tenantId: row.tenantId,
    requestId: row.requestId,
    recipientKey: row.recipientKey,
    revision: `action:${action.verb}`,
    at: context.at,
    correlationId: context.correlationId,
    data: {
      requestId: row.requestId,
      tenantId: row.tenantId.toLowerCase(),
      recipient: row.recipient,
      verb: action.verb,
      actionType: action.type,
      inputs: action.inputs,
      teamsUserId: row.teamsUserId ?? "",
      ...(row.aadObjectId !== undefined ? { aadObjectId: row.aadObjectId } : {}),
      revision: action.revision,
      at: action.at,
    },
  });
}
