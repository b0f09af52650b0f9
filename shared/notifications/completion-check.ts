import { completedEvent } from "../events/event-factory";
import { CountsTally, recipientView } from "../events/recipient-view";
import type { Logger } from "../logging";
import type { CloudEvent } from "../model/cloud-event";
import type { QueuePort } from "../queue/queue-port";
import type { DeliveryLedger } from "../store/delivery-ledger";
import type {
  NotificationRequestStore,
  RequestKey,
  StoredRequest,
} from "../store/notification-requests";
import { withEvents } from "../store/stored-events";
import { GLOBAL_PER_BOT_PER_TENANT_LIMIT } from "../teams-limits";
import { type EventOutbox, requestEvents } from "./event-outbox";
import { overallState } from "./status";
import { completionMessage, type CompletionWork } from "./work-items";

export interface CompletionCheckDependencies {
  readonly requests: NotificationRequestStore;
  readonly ledger: Pick<DeliveryLedger, "list">;
  readonly outbox: EventOutbox;
  /** The internal work queue (the next look is a scheduled work item). */
  readonly queue: () => QueuePort;
  readonly clock: () => Date;
}

export type CompletionResult =
  | { readonly kind: "completed" | "already-completed" | "no-request" | "events-off" }
  | { readonly kind: "later"; readonly at: Date; readonly pending: number };

/** The first look comes no sooner, and a look never waits longer than this. */
const MIN_WAIT_MS = 2_000;
const MAX_WAIT_MS = 30 * 60_000;

/**
 * Writes a fanned-out request's `herald.notification.completed` once every recipient is final,
 * without a counter on the request row (10,000 recipients finishing at once would all race for
 * one ETag): a scheduled work item lists the request's ledger partition, and when nothing is
 * pending writes the event on the request row with one conditional write, then publishes it.
 * Until then it looks again: after the time the pending recipients need at the tenant's rate,
 * and twice as long each time a look finds no progress (retries waiting out a Retry-After),
 * at most half an hour. A request with one recipient needs none of this: that recipient's final
 * write carries the event.
 */
export class CompletionChecker {
  constructor(private readonly deps: CompletionCheckDependencies) {}

  /** The first look after a fan-out of `pending` recipients. */
  async schedule(
    request: RequestKey & { readonly correlationId?: string | undefined },
    pending: number,
  ): Promise<void> {
    if (!this.deps.outbox.enabled) return;
    const work: CompletionWork = {
      tenantId: request.tenantId,
      requestId: request.id,
      ...(request.correlationId !== undefined ? { correlationId: request.correlationId } : {}),
      check: 1,
      pending,
    };
    await this.deps.queue().schedule(completionMessage(work), this.after(waitMs(pending)));
  }

  async check(work: CompletionWork, log: Logger): Promise<CompletionResult> {
    if (!this.deps.outbox.enabled) return { kind: "events-off" };
    const key = { tenantId: work.tenantId, id: work.requestId };
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await this.deps.requests.get(key);
      if (stored === undefined) return { kind: "no-request" };
      const recorded = stored.events?.find((e) => e.type === "herald.notification.completed");
      if (recorded !== undefined) {
        // A look redone after a crash between the write and the publish: publish it again.
        await this.deps.outbox.publish(requestEvents(stored), [recorded]);
        return { kind: "already-completed" };
      }
      const tally = new CountsTally();
      let latest = this.deps.clock();
      for await (const row of this.deps.ledger.list(key)) {
        // A sole recipient's final write recorded the request's `completed` (a dead-lettered
        // dispatch that had delivered inline asks again): it stands, published again as is.
        const sole = row.events?.find((e) => e.type === "herald.notification.completed");
        if (sole !== undefined) {
          await this.deps.outbox.publish(row, [sole]);
          return { kind: "already-completed" };
        }
        tally.add(recipientView(row).state, row.readAt !== undefined);
        latest = laterOf(latest, row.events);
      }
      const counts = tally.value;
      // Outstanding updates of sent copies do not hold the delivery's completion back.
      const state = overallState(stored, counts, 0);
      if (state !== "completed" && state !== "failed" && state !== "recalled") {
        const pending = Math.max(counts.pending, (stored.recipientCount ?? 0) - counts.total, 1);
        return this.later(work, pending, work.pending);
      }
      const event = completedEvent(
        key,
        { state, counts },
        { at: latest, correlationId: work.correlationId ?? stored.correlationId },
      );
      const written = await this.write(stored, event);
      if (written === undefined) continue; // another writer changed the row: look again
      await this.deps.outbox.publish(requestEvents(written), [event]);
      log.info("Request completed", { state, total: counts.total, sent: counts.sent });
      return { kind: "completed" };
    }
    // The row kept changing under this look (the dispatch still writing it): look again soon.
    return this.later(work, 1, undefined);
  }

  private async write(
    stored: StoredRequest,
    event: ReturnType<typeof completedEvent>,
  ): Promise<StoredRequest | undefined> {
    const updated = await this.deps.requests.update(
      stored,
      { events: withEvents(stored.events, [event]) },
      { ifUnchanged: true },
    );
    return updated === "conflict" ? undefined : updated;
  }

  private async later(
    work: CompletionWork,
    pending: number,
    pendingBefore: number | undefined,
  ): Promise<CompletionResult> {
    // No progress since the last look: recipients are waiting out retries: wait longer.
    const stalled = pendingBefore !== undefined && pending >= pendingBefore;
    const at = this.after(waitMs(pending, stalled ? work.check : 0));
    await this.deps
      .queue()
      .schedule(completionMessage({ ...work, check: work.check + 1, pending }), at);
    return { kind: "later", at, pending };
  }

  private after(ms: number): Date {
    return new Date(this.deps.clock().getTime() + ms);
  }
}

/**
 * How long `pending` recipients take at the tenant's rate (Teams' 50 calls per second), at least
 * `MIN_WAIT_MS`; after `stalledLooks` looks without progress, doubling from there.
 */
function waitMs(pending: number, stalledLooks = 0): number {
  const { limit, seconds } = GLOBAL_PER_BOT_PER_TENANT_LIMIT;
  const paced = ((pending * seconds) / limit) * 1_000;
  const backoff = stalledLooks > 0 ? MIN_WAIT_MS * 2 ** stalledLooks : 0;
  return Math.min(MAX_WAIT_MS, Math.max(MIN_WAIT_MS, paced, backoff));
}

/**
 * The later of `at` and the rows' last event: `completed` never comes before a delivery it
 * counts, even when the instance that wrote that delivery had a clock ahead of this one's.
 */
function laterOf(at: Date, events: readonly CloudEvent[] | undefined): Date {
  let latest = at;
  for (const event of events ?? []) {
    const time = Date.parse(event.time);
    if (time > latest.getTime()) latest = new Date(time);
  }
  return latest;
}
