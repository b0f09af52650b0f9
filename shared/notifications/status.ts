import { type DeliveryLedger, type DeliveryState } from "../store/delivery-ledger";
import { withoutUndefined } from "../store/entities";
import type { NotificationRequestStore, StoredRequest } from "../store/notification-requests";
import type { FieldError, Recipient } from "./schema";

/** Recipient states as callers see them: `sending` is still `pending` to them. */
export type RecipientState = "pending" | "sent" | "unreachable" | "failed" | "rejected";

export type RequestStatusState = "queued" | "scheduled" | "in-progress" | "completed" | "rejected";

export interface RecipientStatus {
  readonly recipient: Recipient;
  readonly state: RecipientState;
  readonly attempts: number;
  readonly lastError?: string;
  readonly activityId?: string;
  readonly teamsUserId?: string;
  readonly nextAttemptAt?: string;
  readonly updatedAt: string;
  readonly completedAt?: string;
}

export interface NotificationStatus {
  readonly id: string;
  readonly state: RequestStatusState;
  readonly tenantId?: string;
  readonly correlationId?: string;
  readonly notBefore?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** Why the request was rejected (invalid request), field by field. */
  readonly errors?: readonly FieldError[];
  /** An unexpected error while splitting the request (it is being redelivered). */
  readonly lastError?: string;
  readonly counts: Readonly<Record<RecipientState | "total", number>>;
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

function visibleState(state: DeliveryState): RecipientState {
  return state === "sending" ? "pending" : state;
}

/** Reads a request's per-recipient states with counts (`GET /api/notifications/{id}`). */
export class NotificationStatusReader {
  constructor(
    private readonly requests: NotificationRequestStore,
    private readonly ledger: DeliveryLedger,
  ) {}

  async get(id: string, query: StatusQuery = {}): Promise<NotificationStatus | undefined> {
    const stored = await this.requests.get(id);
    if (stored === undefined) return undefined;
    const limit = Math.max(0, Math.min(query.limit ?? 1_000, 10_000));
    const counts = { total: 0, pending: 0, sent: 0, unreachable: 0, failed: 0, rejected: 0 };
    const recipients: RecipientStatus[] = [];
    let truncated = false;
    for await (const row of this.ledger.list(id)) {
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
          attempts: row.attempts,
          lastError: row.lastError,
          activityId: row.activityId,
          teamsUserId: row.teamsUserId,
          nextAttemptAt: state === "pending" ? row.nextAttemptAt : undefined,
          updatedAt: row.updatedAt,
          completedAt: row.completedAt,
        }),
      );
    }
    return withoutUndefined({
      id: stored.id,
      state: overallState(stored, counts),
      tenantId: stored.tenantId,
      correlationId: stored.correlationId,
      notBefore: stored.notBefore,
      createdAt: stored.createdAt,
      updatedAt: stored.updatedAt,
      errors: stored.errors,
      lastError: stored.lastError,
      counts,
      recipients,
      recipientsTruncated: truncated,
    });
  }
}

function overallState(
  stored: StoredRequest,
  counts: { total: number; pending: number },
): RequestStatusState {
  if (stored.state === "rejected") return "rejected";
  if (counts.total === 0) return stored.state === "scheduled" ? "scheduled" : "queued";
  if (stored.state !== "dispatched" || counts.pending > 0) return "in-progress";
  return "completed";
}
