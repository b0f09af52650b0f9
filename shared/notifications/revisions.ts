import type { Logger } from "../logging";
import type { QueuePort } from "../queue/queue-port";
import type {
  NotificationRequestStore,
  RequestKey,
  RequestPatch,
  StoredRequest,
} from "../store/notification-requests";
import { revisionMessage } from "./change-work-items";
import { activitySizeProblem, type FieldError, type NotificationUpdate } from "./schema";
import { dispatchMessage } from "./work-items";

export type ChangeResult =
  | {
      readonly kind: "accepted";
      readonly id: string;
      readonly tenantId: string;
      /** The request's revision after this change (a recall leaves it as it was). */
      readonly revision: number;
      readonly recalled: boolean;
      /** The same queue message was accepted before (a redelivery): nothing new. */
      readonly replay?: boolean;
    }
  | { readonly kind: "not-found"; readonly id: string }
  | { readonly kind: "invalid"; readonly errors: readonly FieldError[] }
  /** The change cannot apply to the request as it is (recalled, rejected, already sent…). */
  | { readonly kind: "refused"; readonly id: string; readonly message: string };

export interface RevisionsDependencies {
  readonly requests: Pick<NotificationRequestStore, "get" | "update">;
  /** The internal work queue. */
  readonly work: () => QueuePort;
  readonly clock: () => Date;
}

/** Rounds of losing the request's conditional write to a concurrent change before giving up. */
const MAX_ROUNDS = 10;

/** What an update asks, once its identity is known. */
export type UpdateChange = Pick<NotificationUpdate, "message" | "summary" | "notBefore">;

/**
 * Where updates and recalls of an accepted request are accepted, from both doors (HTTP `PATCH`
 * and `DELETE` on `/api/notifications/{id}`, and the intake queue's `operation`). Each is one
 * ETag-conditional write of the request row: an update takes the next revision number there,
 * so of two concurrent updates each gets its own number in the order the store accepted them,
 * and a recall marks the request recalled, after which no update applies. Then the change's
 * pass goes on the internal work queue in the tenant's session (revision-pass.ts). Nothing here
 * calls Teams.
 *
 * A queue message is accepted once: its message id is kept on the request as the last change,
 * so the broker redelivering it is a replay, not one more revision.
 */
export class NotificationRevisions {
  constructor(private readonly deps: RevisionsDependencies) {}

  async update(
    key: RequestKey,
    change: UpdateChange & { readonly correlationId?: string | undefined },
    log: Logger,
    occurrence?: string,
  ): Promise<ChangeResult> {
    return this.onRequest(key, occurrence, "update", async (current) => {
      if (current.recalledAt !== undefined)
        return this.refused(key, "this request was recalled: it cannot be updated");
      if (change.notBefore !== undefined && current.state !== "scheduled")
        return this.refused(
          key,
          "notBefore can only change while the request is scheduled and nothing was sent yet",
        );
      const message = change.message ?? current.message;
      const problem =
        message === undefined
          ? undefined
          : activitySizeProblem(message, change.summary ?? current.summary);
      if (problem !== undefined)
        return { kind: "invalid", errors: [{ path: "message", message: problem }] };
      const revision = (current.revision ?? 1) + 1;
      const patch: RequestPatch = {
        revision,
        lastChangeId: occurrence,
        ...(change.message !== undefined ? { message: change.message } : {}),
        ...(change.summary !== undefined ? { summary: change.summary } : {}),
        ...(change.notBefore !== undefined ? { notBefore: change.notBefore } : {}),
      };
      const written = await this.deps.requests.update(current, patch, { ifUnchanged: true });
      if (written === "conflict") return written;
      await this.queuePass(written, "update", change.correlationId ?? current.correlationId);
      if (change.notBefore !== undefined) await this.reschedule(current, written);
      log.info("Notification update accepted", {
        revision,
        rescheduled: change.notBefore !== undefined,
      });
      return this.accepted(written);
    });
  }

  /** A recall: idempotent (a recalled request is recalled again with the same answer). */
  async recall(
    key: RequestKey,
    change: { readonly correlationId?: string | undefined },
    log: Logger,
    occurrence?: string,
  ): Promise<ChangeResult> {
    return this.onRequest(key, occurrence, "recall", async (current) => {
      const correlationId = change.correlationId ?? current.correlationId;
      if (current.recalledAt !== undefined) {
        // The pass of the first recall collapses with this one at the broker.
        await this.queuePass(current, "recall", correlationId);
        return this.accepted(current);
      }
      const written = await this.deps.requests.update(
        current,
        { recalledAt: this.deps.clock().toISOString(), lastChangeId: occurrence },
        { ifUnchanged: true },
      );
      if (written === "conflict") return written;
      await this.queuePass(written, "recall", correlationId);
      // Not dispatched yet (scheduled, or still queued): a dispatch now records its recipients
      // `cancelled`, so the status is final at once; the original dispatch then finds them so.
      if (current.state !== "dispatched")
        await this.deps.work().enqueue([
          dispatchMessage(
            {
              tenantId: written.tenantId,
              requestId: written.id,
              ...(correlationId !== undefined ? { correlationId } : {}),
            },
            { unique: true },
          ),
        ]);
      log.info("Notification recall accepted", { revision: written.revision ?? 1 });
      return this.accepted(written);
    });
  }

  /**
   * Reads the request and applies `change` to it, again from a fresh read while its conditional
   * write loses to a concurrent change; a request that takes no change answers at once.
   */
  private async onRequest(
    key: RequestKey,
    occurrence: string | undefined,
    operation: "update" | "recall",
    change: (current: StoredRequest) => Promise<ChangeResult | "conflict">,
  ): Promise<ChangeResult> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const stored = await this.deps.requests.get(key);
      const refusal = this.refusal(key, stored, occurrence);
      if (refusal !== undefined || stored === undefined) return refusal!;
      const result = await change(stored);
      if (result !== "conflict") return result;
    }
    throw new Error(`the request kept changing while the ${operation} was being accepted`);
  }

  /** Why no change applies to `stored` (or a replay's answer); undefined when one may. */
  private refusal(
    key: RequestKey,
    stored: StoredRequest | undefined,
    occurrence: string | undefined,
  ): ChangeResult | undefined {
    if (stored === undefined) return { kind: "not-found", id: key.id };
    if (stored.state === "rejected")
      return this.refused(key, "this request was rejected: nothing of it was sent");
    if (occurrence !== undefined && stored.lastChangeId === occurrence)
      return { ...this.accepted(stored), replay: true };
    return undefined;
  }

  private refused(key: RequestKey, message: string): ChangeResult {
    return { kind: "refused", id: key.id, message };
  }

  private accepted(stored: StoredRequest): Extract<ChangeResult, { kind: "accepted" }> {
    return {
      kind: "accepted",
      id: stored.id,
      tenantId: stored.tenantId,
      revision: stored.revision ?? 1,
      recalled: stored.recalledAt !== undefined,
    };
  }

  private async queuePass(
    stored: StoredRequest,
    operation: "update" | "recall",
    correlationId: string | undefined,
  ): Promise<void> {
    await this.deps.work().enqueue([
      revisionMessage({
        tenantId: stored.tenantId,
        requestId: stored.id,
        operation,
        revision: stored.revision ?? 1,
        round: 1,
        ...(correlationId !== undefined ? { correlationId } : {}),
      }),
    ]);
  }

  /**
   * A scheduled request moved: a dispatch for the new time when it is earlier than the old one
   * (the old dispatch, coming later, finds the request dispatched); when it is later, the old
   * dispatch comes early, reads the new time and schedules itself again.
   */
  private async reschedule(before: StoredRequest, after: StoredRequest): Promise<void> {
    const next = Date.parse(after.notBefore ?? "");
    const previous = Date.parse(before.notBefore ?? "");
    if (Number.isFinite(previous) && next >= previous) return;
    const message = dispatchMessage(
      {
        tenantId: after.tenantId,
        requestId: after.id,
        ...(after.correlationId !== undefined ? { correlationId: after.correlationId } : {}),
      },
      { unique: true },
    );
    const at = new Date(next);
    if (at.getTime() > this.deps.clock().getTime()) await this.deps.work().schedule(message, at);
    else await this.deps.work().enqueue([message]);
  }
}
