import { newRowEvents } from "../events/event-factory";
import type { Logger } from "../logging";
import type { DeliveryLedger, NewDelivery } from "../store/delivery-ledger";
import type { NotificationRequestStore } from "../store/notification-requests";
import type { CompletionChecker } from "./completion-check";
import type { EventOutbox } from "./event-outbox";
import { metric } from "./metrics";
import { splitRecipients } from "./recipients";
import type { DispatchWork, InlineRequest } from "./work-items";

/** What a dispatch knows of its request: its content, and whether it was read just now. */
export type DispatchContent = InlineRequest & {
  readonly recalled: boolean;
  /** When it was read from the store; undefined: carried in the work item since intake. */
  readonly readAt?: number;
};

/**
 * Whether a request carried in its dispatch may have changed since intake: a scheduled one
 * (moved, updated or recalled while it waited) or a fan-out; the dispatch then reads it back
 * (one read for all its recipients). Only a single recipient sent at once goes on what its
 * dispatch carries (the steady path).
 */
export function mayHaveChanged(request: InlineRequest): boolean {
  if (request.notBefore !== undefined || request.recipients.length !== 1) return true;
  const only = request.recipients[0];
  return typeof only === "object" && only !== null && ("teamId" in only || "groupId" in only);
}

export interface RecalledDispatchDependencies {
  readonly requests: Pick<NotificationRequestStore, "get" | "update">;
  readonly ledger: Pick<DeliveryLedger, "list" | "create">;
  readonly outbox: EventOutbox;
  readonly completion: Pick<CompletionChecker, "schedule">;
  readonly clock?: () => Date;
}

/**
 * A recalled request's dispatch: every recipient it names is recorded `cancelled` (with its
 * `herald.delivery.cancelled` event) and nothing is sent; team rosters and groups are not
 * expanded for it. Rows an earlier dispatch wrote are left as they are (the recall's pass
 * deals with them).
 */
export async function dispatchRecalled(
  deps: RecalledDispatchDependencies,
  work: DispatchWork,
  recipients: readonly unknown[],
  log: Logger,
): Promise<{ readonly kind: "recalled"; readonly cancelled: number }> {
  const key = { tenantId: work.tenantId, id: work.requestId };
  const at = (deps.clock ?? (() => new Date()))();
  const { deliverable, rejected } = splitRecipients(recipients);
  const rows: NewDelivery[] = [...deliverable].map(([recipientKey, recipient]) => ({
    recipientKey,
    recipient,
    state: "cancelled" as const,
  }));
  for (const r of rejected)
    if (r.recipient !== undefined)
      rows.push({
        recipientKey: r.recipientKey,
        recipient: r.recipient,
        state: "rejected",
        lastError: r.reason,
      });
  const existing = new Set<string>();
  for await (const row of deps.ledger.list(key)) existing.add(row.recipientKey);
  const fresh = rows
    .filter((r) => !existing.has(r.recipientKey))
    .map((r) => {
      const events = deps.outbox.record(() =>
        newRowEvents(key, r, { at, correlationId: work.correlationId }),
      );
      return events.length === 0 ? r : { ...r, events };
    });
  const created = await deps.ledger.create(key, fresh);
  for (const row of fresh)
    await deps.outbox.publish({
      tenantId: key.tenantId,
      requestId: key.id,
      recipientKey: row.recipientKey,
      events: row.events,
    });
  const stored = await deps.requests.get(key);
  if (stored !== undefined && stored.state !== "dispatched")
    await deps.requests.update(stored, { state: "dispatched", recipientCount: rows.length });
  await deps.completion.schedule({ ...key, correlationId: work.correlationId }, 0);
  log.info("Dispatch of a recalled request: nothing sent, its recipients cancelled", {
    cancelled: created,
  });
  if (created > 0) metric(log, "notifications.cancelled", created);
  return { kind: "recalled", cancelled: created };
}
