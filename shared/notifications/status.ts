import { type Delivery, type DeliveryLedger, type DeliveryState } from "../store/delivery-ledger";
import { withoutUndefined } from "../store/entities";
import type { NotificationRequestStore, StoredRequest } from "../store/notification-requests";
import { recipientOfKey } from "./recipients";
import type { FieldError, Recipient } from "./schema";

/**
 * Recipient states as callers see them: `sending` is still `pending` to them; `duplicate` is a
 * second name of a person another recipient already reaches (`duplicateOf` says which);
 * `cancelled`: never sent, the request was recalled first; `recalled`: sent, then deleted.
 */
export type RecipientState =
  | "pending"
  | "sent"
  | "unreachable"
  | "failed"
  | "rejected"
  | "duplicate"
  | "cancelled"
  | "recalled";

export const RECIPIENT_STATES: readonly RecipientState[] = [
  "pending",
  "sent",
  "unreachable",
  "failed",
  "rejected",
  "duplicate",
  "cancelled",
  "recalled",
];

/**
 * `completed`: every recipient is final (look at the counts for who was not reached);
 * `failed`: the request's own work was dead-lettered before every recipient had a row;
 * `recalled`: the request was recalled and every copy is deleted or cancelled (or final
 * otherwise: a copy Teams would not let Herald delete is `failed`).
 */
export type RequestStatusState =
  "queued" | "scheduled" | "in-progress" | "completed" | "rejected" | "failed" | "recalled";

export interface RecipientStatus {
  readonly recipient: Recipient;
  readonly state: RecipientState;
  /**
   * A pending recipient Herald has never seen: `installing` (the app is being installed for them
   * through Microsoft Graph) or `waiting-for-chat` (installed; Teams is opening the 1:1 chat).
   */
  readonly step?: RecipientStep;
  readonly attempts: number;
  readonly lastError?: string;
  readonly activityId?: string;
  /** The request revision this person's copy shows now (sent and recalled copies). */
  readonly revision?: number;
  readonly teamsUserId?: string;
  /** `duplicate`: the recipient (of this request) through whom this person is reached. */
  readonly duplicateOf?: Recipient;
  readonly nextAttemptAt?: string;
  readonly updatedAt: string;
  readonly completedAt?: string;
}

export interface NotificationStatus {
  readonly id: string;
  readonly state: RequestStatusState;
  /** True when nothing more will happen: `completed`, `rejected`, `failed` or `recalled`. */
  readonly final: boolean;
  /** The request's latest revision: 1 as sent, one more for each update accepted. */
  readonly revision: number;
  /** True once the request was recalled (`recalledAt` says when). */
  readonly recalled: boolean;
  readonly recalledAt?: string;
  /**
   * Sent copies that still show an older revision than `revision` (their update is under way,
   * or Teams refused it): the request is not final while an update can still reach them.
   */
  readonly outdated: number;
  readonly tenantId?: string;
  readonly correlationId?: string;
  readonly notBefore?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** Why the request was rejected (invalid request), field by field. */
  readonly errors?: readonly FieldError[];
  /** An unexpected error while splitting the request (it is being redelivered), or why it failed. */
  readonly lastError?: string;
  /** Submissions of this id with different content, refused (nothing of them was sent). */
  readonly conflicts?: {
    readonly count: number;
    readonly lastAt?: string;
    readonly lastSource?: "http" | "queue";
  };
  readonly counts: Readonly<Record<RecipientState | "total", number>>;
  /** Recipients the request has when all are recorded (unknown until a team roster is expanded). */
  readonly expectedRecipients?: number;
  readonly recipients: readonly RecipientStatus[];
  /** True when `recipients` was cut at the limit; `counts` always covers every recipient. */
  readonly recipientsTruncated: boolean;
}

export interface StatusQuery {
  /** Only recipients in this state. */
  readonly state?: RecipientState;
  /** At most this many recipients listed (default 1,000). */
  readonly limit?: number;
}

/** Where a pending recipient Herald has never seen stands in its proactive install. */
export type RecipientStep = "installing" | "waiting-for-chat";

function visibleState(state: DeliveryState): RecipientState {
  return state === "sending" || state === "installing" || state === "waiting-for-chat"
    ? "pending"
    : state;
}

/** What a sent (or recalled) copy shows; nothing for a recipient never sent. */
function shownRevision(row: Delivery): number | undefined {
  return row.state === "sent" || row.state === "recalled" || row.activityId !== undefined
    ? (row.revision ?? 1)
    : undefined;
}

function stepOf(state: DeliveryState): RecipientStep | undefined {
  return state === "installing" || state === "waiting-for-chat" ? state : undefined;
}

export type StatusLookup =
  | { readonly kind: "found"; readonly status: NotificationStatus }
  | { readonly kind: "not-found" }
  /** No tenant was named and several tenants use this id. */
  | { readonly kind: "ambiguous" };

/** Reads a request's per-recipient states with counts (`GET /api/notifications/{id}`). */
export class NotificationStatusReader {
  constructor(
    private readonly requests: NotificationRequestStore,
    private readonly ledger: DeliveryLedger,
  ) {}

  /**
   * The request (tenant, id); with no tenant, the one tenant's request with this id (requests
   * are identified by both, so several tenants may use one id: then the tenant must be named).
   */
  async lookup(
    key: { readonly tenantId?: string | undefined; readonly id: string },
    query: StatusQuery = {},
  ): Promise<StatusLookup> {
    let stored: StoredRequest | undefined;
    if (key.tenantId !== undefined) {
      stored = await this.requests.get({ tenantId: key.tenantId, id: key.id });
    } else {
      const found = await this.requests.findById(key.id);
      if (found.length > 1) return { kind: "ambiguous" };
      stored = found[0];
    }
    if (stored === undefined) return { kind: "not-found" };
    return { kind: "found", status: await this.statusOf(stored, query) };
  }

  /** `lookup`, for callers that name the tenant or know the id is unique (tests, the CLI). */
  async get(
    id: string,
    query: StatusQuery & { readonly tenantId?: string } = {},
  ): Promise<NotificationStatus | undefined> {
    const found = await this.lookup({ tenantId: query.tenantId, id }, query);
    return found.kind === "found" ? found.status : undefined;
  }

  private async statusOf(stored: StoredRequest, query: StatusQuery): Promise<NotificationStatus> {
    const limit = Math.max(0, Math.min(query.limit ?? 1_000, 10_000));
    const counts = {
      total: 0,
      pending: 0,
      sent: 0,
      unreachable: 0,
      failed: 0,
      rejected: 0,
      duplicate: 0,
      cancelled: 0,
      recalled: 0,
    };
    const recipients: RecipientStatus[] = [];
    let truncated = false;
    let outdated = 0;
    const latest = stored.revision ?? 1;
    for await (const row of this.ledger.list(stored)) {
      const state = visibleState(row.state);
      counts.total += 1;
      counts[state] += 1;
      // A copy whose update Teams refused keeps the error on its row: it is not waited for.
      if (
        state === "sent" &&
        (row.revision ?? 1) < latest &&
        (row.lastError === undefined || row.nextAttemptAt !== undefined)
      )
        outdated += 1;
      if (query.state !== undefined && query.state !== state) continue;
      if (recipients.length >= limit) {
        truncated = true;
        continue;
      }
      recipients.push(
        withoutUndefined({
          recipient: row.recipient,
          state,
          step: stepOf(row.state),
          attempts: row.attempts,
          lastError: row.lastError,
          activityId: row.activityId,
          revision: shownRevision(row),
          teamsUserId: row.teamsUserId,
          duplicateOf: row.duplicateOf === undefined ? undefined : recipientOfKey(row.duplicateOf),
          nextAttemptAt: state === "pending" ? row.nextAttemptAt : undefined,
          updatedAt: row.updatedAt,
          completedAt: row.completedAt,
        }),
      );
    }
    const state = overallState(stored, counts, outdated);
    return withoutUndefined({
      id: stored.id,
      state,
      final:
        state === "completed" || state === "rejected" || state === "failed" || state === "recalled",
      revision: stored.revision ?? 1,
      recalled: stored.recalledAt !== undefined,
      recalledAt: stored.recalledAt,
      outdated,
      tenantId: stored.tenantId === "" ? undefined : stored.tenantId,
      correlationId: stored.correlationId,
      notBefore: stored.notBefore,
      createdAt: stored.createdAt,
      updatedAt: stored.updatedAt,
      errors: stored.errors,
      lastError: stored.lastError,
      conflicts: await this.requests.conflicts(stored),
      counts,
      expectedRecipients: stored.recipientCount,
      recipients,
      recipientsTruncated: truncated,
    });
  }
}

/**
 * A request is final when every recipient it will have is final: their number is known at
 * intake (users only) or from the dispatch (team rosters expanded).
 */
function overallState(
  stored: StoredRequest,
  counts: { total: number; pending: number; sent: number },
  outdated: number,
): RequestStatusState {
  if (stored.state === "rejected") return "rejected";
  if (stored.recalledAt !== undefined) {
    // Recalled: final once nothing is pending and no copy is left to delete.
    const settled =
      counts.pending === 0 &&
      counts.sent === 0 &&
      (stored.state === "dispatched" || counts.total >= (stored.recipientCount ?? 1));
    return settled ? "recalled" : "in-progress";
  }
  const expected = stored.recipientCount;
  const allRecorded =
    expected !== undefined && counts.total >= expected && stored.state !== "received";
  if (stored.state === "failed") return counts.pending === 0 ? "failed" : "in-progress";
  if (allRecorded && counts.pending === 0 && outdated === 0) return "completed";
  if (counts.total === 0) return stored.state === "scheduled" ? "scheduled" : "queued";
  return "in-progress";
}
