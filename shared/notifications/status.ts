import {
  CountsTally,
  type RecipientCounts,
  type RecipientState,
  type RecipientView,
  recipientView,
} from "../events/recipient-view";
import type { DeliveryLedger } from "../store/delivery-ledger";
import { withoutUndefined } from "../store/entities";
import type { NotificationRequestStore, StoredRequest } from "../store/notification-requests";
import type { FieldError } from "./schema";

export {
  RECIPIENT_STATES,
  type RecipientCounts,
  type RecipientState,
  type RecipientStep,
} from "../events/recipient-view";

/**
 * `completed`: every recipient is final (look at the counts for who was not reached);
 * `failed`: the request's own work was dead-lettered before every recipient had a row;
 * `recalled`: the request was recalled and every copy is deleted or cancelled (or final
 * otherwise: a copy Teams would not let Herald delete is `failed`).
 */
export type RequestStatusState =
  "queued" | "scheduled" | "in-progress" | "completed" | "rejected" | "failed" | "recalled";

/** A recipient's fields as the status API shows them (the same as in its events' `data`). */
export interface RecipientStatus extends RecipientView {
  readonly nextAttemptAt?: string;
  /** The card's buttons this recipient pressed: each verb once, in order. */
  readonly actions?: readonly { readonly verb: string; readonly at: string }[];
  readonly updatedAt: string;
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
  /** Per state, in all (`total`), and how many read it (`read`: receipts can be off). */
  readonly counts: RecipientCounts;
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
    const tally = new CountsTally();
    const recipients: RecipientStatus[] = [];
    let truncated = false;
    let outdated = 0;
    const latest = stored.revision ?? 1;
    for await (const row of this.ledger.list(stored)) {
      const view = recipientView(row);
      tally.add(view.state, row.readAt !== undefined);
      // A copy whose update Teams refused keeps the error on its row: it is not waited for.
      if (
        view.state === "sent" &&
        (row.revision ?? 1) < latest &&
        (row.lastError === undefined || row.nextAttemptAt !== undefined)
      )
        outdated += 1;
      if (query.state !== undefined && query.state !== view.state) continue;
      if (recipients.length >= limit) {
        truncated = true;
        continue;
      }
      recipients.push(
        withoutUndefined({
          ...view,
          nextAttemptAt: view.state === "pending" ? row.nextAttemptAt : undefined,
          actions: row.actions?.map(({ verb, at }) => ({ verb, at })),
          updatedAt: row.updatedAt,
        }),
      );
    }
    const counts = tally.value;
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
export function overallState(
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
  // Only a dispatch writes recipients' rows, so all of them recorded means it ran, whatever the
  // row says of its enqueue (`received`: unconfirmed, then sent by the intake check).
  const allRecorded = expected !== undefined && counts.total >= expected;
  if (stored.state === "failed") return counts.pending === 0 ? "failed" : "in-progress";
  if (allRecorded && counts.pending === 0 && outdated === 0) return "completed";
  if (counts.total === 0) return stored.state === "scheduled" ? "scheduled" : "queued";
  return "in-progress";
}
