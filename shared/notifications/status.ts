import { type DeliveryLedger, type DeliveryState } from "../store/delivery-ledger";
import { withoutUndefined } from "../store/entities";
import type { NotificationRequestStore, StoredRequest } from "../store/notification-requests";
import { recipientOfKey } from "./recipients";
import type { FieldError, Recipient } from "./schema";

/**
 * Recipient states as callers see them: `sending` is still `pending` to them; `duplicate` is a
 * second name of a person another recipient already reaches (`duplicateOf` says which).
 */
export type RecipientState =
  "pending" | "sent" | "unreachable" | "failed" | "rejected" | "duplicate";

export const RECIPIENT_STATES: readonly RecipientState[] = [
  "pending",
  "sent",
  "unreachable",
  "failed",
  "rejected",
  "duplicate",
];

/**
 * `completed`: every recipient is final (look at the counts for who was not reached);
 * `failed`: the request's own work was dead-lettered before every recipient had a row.
 */
export type RequestStatusState =
  "queued" | "scheduled" | "in-progress" | "completed" | "rejected" | "failed";

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
  readonly teamsUserId?: string;
  /**
   * Who the recipient is, when Herald knows it and the recipient does not say (a group's
   * member, named by AAD id: Graph's UPN and display name).
   */
  readonly userPrincipalName?: string;
  readonly displayName?: string;
  /** `duplicate`: the recipient (of this request) through whom this person is reached. */
  readonly duplicateOf?: Recipient;
  readonly nextAttemptAt?: string;
  readonly updatedAt: string;
  readonly completedAt?: string;
}

export interface NotificationStatus {
  readonly id: string;
  readonly state: RequestStatusState;
  /** True when nothing more will happen: `completed`, `rejected` or `failed`. */
  readonly final: boolean;
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
    };
    const recipients: RecipientStatus[] = [];
    let truncated = false;
    for await (const row of this.ledger.list(stored)) {
      const state = visibleState(row.state);
      counts.total += 1;
      counts[state] += 1;
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
          teamsUserId: row.teamsUserId,
          userPrincipalName: row.userPrincipalName,
          displayName: row.displayName,
          duplicateOf: row.duplicateOf === undefined ? undefined : recipientOfKey(row.duplicateOf),
          nextAttemptAt: state === "pending" ? row.nextAttemptAt : undefined,
          updatedAt: row.updatedAt,
          completedAt: row.completedAt,
        }),
      );
    }
    const state = overallState(stored, counts);
    return withoutUndefined({
      id: stored.id,
      state,
      final: state === "completed" || state === "rejected" || state === "failed",
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
  counts: { total: number; pending: number },
): RequestStatusState {
  if (stored.state === "rejected") return "rejected";
  const expected = stored.recipientCount;
  // Only a dispatch writes recipients' rows, so all of them recorded means it ran, whatever the
  // row says of its enqueue (`received`: unconfirmed, then sent by the intake check).
  const allRecorded = expected !== undefined && counts.total >= expected;
  if (stored.state === "failed") return counts.pending === 0 ? "failed" : "in-progress";
  if (allRecorded && counts.pending === 0) return "completed";
  if (counts.total === 0) return stored.state === "scheduled" ? "scheduled" : "queued";
  return "in-progress";
}
