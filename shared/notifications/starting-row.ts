import type { Delivery, DeliveryLedger } from "../store/delivery-ledger";
import type { DeliveryWork, QueueMessageInfo } from "./work-items";

/**
 * The ledger row a delivery starts from, read only where it must be:
 * - the dispatch's own delivery of its only recipient: not written yet (undefined), so the claim
 *   creates it;
 * - a fan-out's first try carries its row as the fan-out wrote it (`written`): the claim is
 *   conditional on that ETag, so a row changed since (a recall, another copy's claim, a send)
 *   fails the claim and is read then, as after any lost race;
 * - anything else (a redelivery, a retry, a deferral) reads it, creating it `pending` if missing.
 */
export function startingRow(
  ledger: Pick<DeliveryLedger, "ensure" | "asWritten">,
  work: DeliveryWork,
  key: string,
  info: Pick<QueueMessageInfo, "deliveryCount">,
  from: "dispatch" | "queue" | undefined,
): Promise<Delivery | undefined> {
  const request = { tenantId: work.tenantId, id: work.requestId };
  if (info.deliveryCount === 1 && from === "dispatch") return Promise.resolve(undefined);
  if (startsUnread(work, info))
    return Promise.resolve(ledger.asWritten(request, key, work.recipient, work.written!));
  return ledger.ensure(request, key, work.recipient);
}

/**
 * True when the try starts from the row as written, not as read: a conflict on its first write
 * is then this invocation's first sight of the row, not a race lost to a writer seen a moment ago.
 */
export function startsUnread(
  work: DeliveryWork,
  info: Pick<QueueMessageInfo, "deliveryCount">,
): boolean {
  return info.deliveryCount === 1 && work.attempt === 1 && work.written !== undefined;
}

/**
 * A work item put back on the queue, without its row as the fan-out wrote it: by then the row
 * may have moved on (a claim, an install step), so the next try reads it.
 */
export function scheduledAgain(work: DeliveryWork): DeliveryWork {
  const { written: _written, ...rest } = work;
  return rest;
}
