import type { Logger } from "../logging";
import type { QueuePort } from "../queue/queue-port";
import type { Delivery, DeliveryLedger } from "../store/delivery-ledger";
import type { NotificationRequestStore, StoredRequest } from "../store/notification-requests";
import { mapLimited } from "../util/collections";
import {
  copyMessage,
  type CopyWork,
  revisionMessage,
  type RevisionWork,
} from "./change-work-items";
import type { CopyLedger } from "./copy-ledger";
import { metric } from "./metrics";
import { contentOf, type RequestContents } from "./request-contents";

export interface RevisionPassDependencies {
  readonly requests: Pick<NotificationRequestStore, "get">;
  readonly ledger: Pick<DeliveryLedger, "list" | "get">;
  readonly copies: CopyLedger;
  readonly contents: RequestContents;
  readonly queue: () => QueuePort;
  readonly clock: () => Date;
  /** Enqueue batch size handed to the queue port. */
  readonly enqueueChunk?: number;
}

export type RevisionPassResult =
  | { readonly kind: "dropped"; readonly reason: string }
  | {
      readonly kind: "passed";
      /** Copies queued for a change. */
      readonly copies: number;
      readonly cancelled: number;
      /** Recipients still under way (or not written yet): the pass comes back for them. */
      readonly underWay: number;
      readonly again?: Date;
    };

/** Writes of cancelled rows at once (a recall of 10,000 pending recipients). */
const WRITE_CONCURRENCY = 8;
/** The first look again at work still under way, then slower, up to the longest wait. */
const RECHECK_MS = 2_000;
const MAX_RECHECK_MS = 30_000;
/** A pass stops coming back after this many (about 3 hours: past any delivery's retries). */
const MAX_ROUNDS = 400;
/**
 * A scheduled request's dispatch reads the request when it runs: a pass need not wait for its
 * recipients while the dispatch is this far off (closer, the dispatch may have read it already).
 */
const DISPATCH_READS_LATEST_MS = 60_000;

/**
 * A request's update or recall brought to every recipient, in the tenant's session like all its
 * Teams work. The pass reads the request (the latest revision) and every ledger row:
 * - a sent copy that shows an older revision (update), or any sent copy (recall), gets a `copy`
 *   work item (copy-changes.ts), split and queued in batches like a fan-out's deliveries;
 * - a recipient not sent yet is cancelled (recall) with a conditional write, or, for an update,
 *   left to its delivery, which takes the latest content when its turn comes;
 * - a recipient under way (its send in flight, a retry scheduled, its row not written yet) is
 *   looked at again: the pass schedules itself once more until none is, since a send that
 *   returns after the update or recall was accepted must still end on the latest (or deleted).
 * The pass also hands the latest content to this process's deliveries, so those of the tenant
 * that run here send it from now on.
 */
export class RevisionPasses {
  private readonly enqueueChunk: number;

  constructor(private readonly deps: RevisionPassDependencies) {
    this.enqueueChunk = deps.enqueueChunk ?? 2_000;
  }

  async run(work: RevisionWork, log: Logger): Promise<RevisionPassResult> {
    const key = { tenantId: work.tenantId, id: work.requestId };
    const stored = await this.deps.requests.get(key);
    if (stored === undefined) return { kind: "dropped", reason: "request not stored" };
    const content = contentOf(stored);
    if (content !== undefined) this.deps.contents.remember(key, content, this.now());
    if (work.operation === "update" && stored.recalledAt !== undefined)
      return { kind: "dropped", reason: "the request was recalled since" };
    const latest = stored.revision ?? 1;
    if (work.operation === "update" && latest > work.revision)
      return { kind: "dropped", reason: `revision ${latest} has its own pass` };

    const copies: CopyWork[] = [];
    const pending: Delivery[] = [];
    let underWay = 0;
    let rows = 0;
    for await (const row of this.deps.ledger.list(key)) {
      rows += 1;
      const next = this.plan(work, row, latest);
      if (next === "copy") copies.push(this.copyWork(work, row, latest));
      else if (next === "cancel") pending.push(row);
      else if (next === "under-way") underWay += 1;
    }
    const cancelled = await this.cancel(work, pending, copies, latest);
    underWay += cancelled.underWay;
    if (this.awaitsRows(stored, rows)) underWay += 1;

    const messages = copies.map((c) => copyMessage(c));
    for (let i = 0; i < messages.length; i += this.enqueueChunk)
      await this.deps.queue().enqueue(messages.slice(i, i + this.enqueueChunk));
    if (cancelled.count > 0) metric(log, "notifications.cancelled", cancelled.count);

    let again: Date | undefined;
    if (underWay > 0 && work.round < MAX_ROUNDS) {
      const delay = Math.min(RECHECK_MS * work.round, MAX_RECHECK_MS);
      again = new Date(this.now() + delay);
      await this.deps.queue().schedule(revisionMessage({ ...work, round: work.round + 1 }), again);
    } else if (underWay > 0) {
      log.error("Revision pass gave up looking again at recipients still under way", {
        underWay,
      });
    }
    log.info(work.operation === "update" ? "Update pass" : "Recall pass", {
      revision: latest,
      round: work.round,
      copies: copies.length,
      cancelled: cancelled.count,
      underWay,
      ...(again !== undefined ? { again: again.toISOString() } : {}),
    });
    return {
      kind: "passed",
      copies: copies.length,
      cancelled: cancelled.count,
      underWay,
      ...(again !== undefined ? { again } : {}),
    };
  }

  /** What the pass does for one row. */
  private plan(
    work: RevisionWork,
    row: Delivery,
    latest: number,
  ): "copy" | "cancel" | "under-way" | "nothing" {
    switch (row.state) {
      case "sent":
        if (work.operation === "recall") return "copy";
        return (row.revision ?? 1) < latest ? "copy" : "nothing";
      case "pending":
      case "installing":
      case "waiting-for-chat":
        // A pending row waiting on a scheduled retry goes with its retry (update) or now (recall).
        return work.operation === "recall" ? "cancel" : "under-way";
      case "sending":
        return "under-way";
      default:
        return "nothing";
    }
  }

  /**
   * Rows not written yet that the pass must wait for: a request whose only recipient is sent to
   * from its dispatch (which reads nothing back), or a fan-out whose dispatch may have read the
   * request before the change. Not for a dispatch still far off: it will read the latest.
   */
  private awaitsRows(stored: StoredRequest, rows: number): boolean {
    if (stored.state === "dispatched" || stored.state === "rejected" || stored.state === "failed")
      return false;
    const expected = stored.recipientCount ?? 1;
    if (rows >= expected) return false;
    const due = stored.notBefore === undefined ? NaN : Date.parse(stored.notBefore);
    return !(due - this.now() > DISPATCH_READS_LATEST_MS);
  }

  /** Recall: pending rows cancelled; a row that changed meanwhile is looked at again. */
  private async cancel(
    work: RevisionWork,
    rows: readonly Delivery[],
    copies: CopyWork[],
    latest: number,
  ): Promise<{ count: number; underWay: number }> {
    let count = 0;
    let underWay = 0;
    await mapLimited(rows, WRITE_CONCURRENCY, async (row) => {
      let current: Delivery | undefined = row;
      for (let round = 0; round < 3 && current !== undefined; round++) {
        const next = this.plan(work, current, latest);
        if (next === "copy") {
          copies.push(this.copyWork(work, current, latest));
          return;
        }
        if (next !== "cancel") {
          if (next === "under-way") underWay += 1;
          return;
        }
        const written = await this.deps.copies.cancelled(current, work);
        if (written.kind === "written") {
          count += 1;
          return;
        }
        current = await this.deps.ledger.get(
          { tenantId: work.tenantId, id: work.requestId },
          current.recipientKey,
        );
      }
      if (current !== undefined) underWay += 1;
    });
    return { count, underWay };
  }

  private copyWork(work: RevisionWork, row: Delivery, latest: number): CopyWork {
    return {
      tenantId: work.tenantId,
      requestId: work.requestId,
      recipient: row.recipient,
      operation: work.operation,
      revision: latest,
      attempt: 1,
      ...(work.correlationId !== undefined ? { correlationId: work.correlationId } : {}),
    };
  }

  private now(): number {
    return this.deps.clock().getTime();
  }
}
