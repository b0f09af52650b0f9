import type { Claim } from "../store/delivery-claim";
import type { Delivery } from "../store/delivery-ledger";
import type { ClaimHolders } from "./claim-holders";
import type { QueueMessageInfo } from "./work-items";

/**
 * How this invocation came to see the row: `read` before it claimed, or `lost-race` (another
 * invocation wrote the row after that read, so that writer was alive a moment ago).
 */
export type Sighting = "read" | "lost-race";

/** Whether a `sending` row's claim stops this invocation, and when to look again. */
export type ClaimStanding =
  | { readonly kind: "free" }
  /**
   * `recheckAt`: a live claim usually settles within a call's time, so the work looks again
   * when the claim is twice as old as now (at least a second later), at the latest just after
   * it expires at `until`.
   */
  | { readonly kind: "held"; readonly until: Date; readonly recheckAt: Date };

export interface DeliveryClaimsOptions {
  readonly holders: ClaimHolders;
  /** How long a claim protects a delivery from other invocations (default 2 min). */
  readonly leaseMs: number;
  readonly clock: () => Date;
}

/**
 * The rules of a delivery's `sending` claim: the one write between a pacing slot and the call
 * to Teams, which keeps a second copy of the work from sending while the first may still be.
 *
 * A claim names the invocation (`<messageId>#<deliveryCount>`), the process that made it
 * (claim-holders.ts) and the broker session it was made in. It no longer stands when
 * - it expired (the lease: the last resort when nothing is known of the holder);
 * - its process is dead: checked on this machine, where the local broker's consumers run;
 * - seen on the row as read (not after a lost race, below):
 *   - it is an earlier delivery of this same message: the broker hands a message to one
 *     consumer at a time, so the earlier one is over;
 *   - another process made it in the session this invocation runs in: a session is held by
 *     one consumer at a time (https://learn.microsoft.com/azure/service-bus-messaging/message-sessions),
 *     so that process lost it (it crashed or stopped, or its lock ran out).
 * After a lost race the claim was written since this invocation's read, by a writer alive a
 * moment ago: only its death frees it.
 *
 * Anything else stands until it expires: a live holder's claim is never taken, because a second
 * send to one person is the one thing Teams cannot undo. What remains possible: a holder that
 * lost its session or its message's lock while still running (stalled past the lock by a long
 * pause, or cut off from the broker but not from Teams) can finish a send it had started after
 * another consumer took over, and that person gets a second copy. That is the same window in
 * which the broker itself hands the holder's own message to the next consumer.
 */
export class DeliveryClaims {
  constructor(private readonly options: DeliveryClaimsOptions) {}

  /** The claim this invocation writes before it calls Teams for `teamsUserId`. */
  claimFor(info: QueueMessageInfo, teamsUserId: string): Claim {
    return {
      claimedBy: claimantOf(info),
      claimHolder: this.options.holders.self,
      claimSession: info.sessionId,
      claimExpiresAt: new Date(this.options.clock().getTime() + this.options.leaseMs).toISOString(),
      deliveryCount: info.deliveryCount,
      teamsUserId,
    };
  }

  /** Whether `row`'s claim (if it is `sending`) keeps this invocation from claiming it. */
  standing(row: Delivery, info: QueueMessageInfo, sighting: Sighting = "read"): ClaimStanding {
    // A `sending` row, or a sent copy held by its update or recall (copy-changes.ts).
    const claimed = row.state === "sending" || row.changing !== undefined;
    if (!claimed || row.claimExpiresAt === undefined) return FREE;
    const expiresAt = Date.parse(row.claimExpiresAt);
    const now = this.options.clock().getTime();
    if (!(expiresAt > now)) return FREE;
    if (this.holderDead(row)) return FREE;
    if (sighting === "read" && (this.isEarlierDelivery(row, info) || this.sessionLost(row, info)))
      return FREE;
    const age = Math.max(0, now - (expiresAt - this.options.leaseMs));
    const recheckAt = Math.min(expiresAt + EXPIRY_MARGIN_MS, now + Math.max(MIN_RECHECK_MS, age));
    return { kind: "held", until: new Date(expiresAt), recheckAt: new Date(recheckAt) };
  }

  /** True when this very invocation made the claim. */
  isOwn(row: Delivery, info: QueueMessageInfo): boolean {
    return row.claimedBy === claimantOf(info);
  }

  private isEarlierDelivery(row: Delivery, info: QueueMessageInfo): boolean {
    const [messageId, count] = (row.claimedBy ?? "").split("#");
    return messageId === info.messageId && Number(count) < info.deliveryCount;
  }

  private holderDead(row: Delivery): boolean {
    return row.claimHolder !== undefined && this.options.holders.isGone(row.claimHolder);
  }

  /** Another process's claim made in the session this invocation now holds. */
  private sessionLost(row: Delivery, info: QueueMessageInfo): boolean {
    return (
      info.sessionId !== undefined &&
      row.claimSession === info.sessionId &&
      row.claimHolder !== undefined &&
      row.claimHolder !== this.options.holders.self
    );
  }
}

const FREE: ClaimStanding = { kind: "free" };
/** The soonest a standing claim is looked at again. */
const MIN_RECHECK_MS = 1_000;
/** A claim is looked at this long after it expires (clocks of two instances differ a little). */
const EXPIRY_MARGIN_MS = 1_000;

/** The invocation a claim names: the message and which delivery of it. */
export function claimantOf(info: QueueMessageInfo): string {
  return `${info.messageId}#${info.deliveryCount}`;
}
