import type { Delivery, DeliveryLedger } from "../store/delivery-ledger";
import type { DeliveryWork, QueueMessageInfo } from "./work-items";

/**
 * The ledger row a delivery starts from, read only where it must be:
 * - the dispatch's own delivery of its only recipient: not written yet (undefined), so the claim
 *   creates it;
 * - a fan-out's first try carries its row as the fan-out wrote it (`written`): the claim is
 *   conditional on that ETag, so a row changed since (a recall, another copy's claim, a send)
 *   fails the claim and is read then, as after any lost race;
 * - anything else (a redelivery, a retry) reads it, creating it `pending` if it is missing.
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
  if (info.deliveryCount === 1 && work.attempt === 1 && work.written !== undefined)
    return Promise.resolve(ledger.asWritten(request, key, work.recipient, work.written));
  return ledger.ensure(request, key, work.recipient);
}
