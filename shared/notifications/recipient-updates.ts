import { type Logger, recipientToken } from "../logging";
import type { Recipient } from "../model/recipient";
import type { QueuePort } from "../queue/queue-port";
import type { Delivery } from "../store/delivery-ledger";
import type { NotificationRequestStore, RequestKey } from "../store/notification-requests";
import type { RecipientOverride, RecipientOverrideStore } from "../store/recipient-overrides";
import { copyMessage } from "./change-work-items";
import { withOverride } from "./copy-content";
import { copyContentFingerprint } from "./fingerprint";
import { findRecipientCopy, type RecipientCopyDependencies } from "./recipient-copy";
import { contentOf } from "./request-contents";
import type { UpdateChange } from "./revisions";
import { activitySizeProblem, type FieldError } from "./schema";

export type RecipientChangeResult =
  | {
      readonly kind: "accepted";
      readonly id: string;
      readonly tenantId: string;
      /** The recipient as the request named them (their row). */
      readonly recipient: Recipient;
      /** The request's revision the override was accepted at. */
      readonly revision: number;
      /** The override's sequence: 1 for the copy's first, one more for each later one. */
      readonly override: number;
      /** The same content was accepted before (a retried PATCH): nothing new. */
      readonly replay?: boolean;
    }
  | { readonly kind: "not-found"; readonly id: string; readonly what: "request" | "recipient" }
  | { readonly kind: "invalid"; readonly errors: readonly FieldError[] }
  | { readonly kind: "refused"; readonly id: string; readonly message: string };

export interface RecipientUpdatesDependencies extends RecipientCopyDependencies {
  readonly requests: Pick<NotificationRequestStore, "get">;
  readonly overrides: Pick<RecipientOverrideStore, "get" | "put">;
  /** The internal work queue. */
  readonly queue: () => QueuePort;
  readonly clock: () => Date;
}

/** What a per-recipient update asks: the request-wide update's content, without a new time. */
export type RecipientChange = Pick<UpdateChange, "message" | "summary"> & {
  readonly correlationId?: string | undefined;
};

/** Rounds of losing the override's conditional write to a concurrent one before giving up. */
const MAX_ROUNDS = 10;

/**
 * One person's copy of a sent request given content of its own
 * (`PATCH /api/notifications/{id}/recipients/{recipient}`): an approval flow telling the person
 * who clicked "Approved, order 4711 created". Accepting it writes the override (its next
 * sequence, ETag-conditional) and queues one copy change for that person in the tenant's
 * session, whose message id names the sequence; the change itself is paced tenant work like
 * every update (copy-changes.ts). The same content again, while no later revision of the
 * request superseded it, is a replay: the same answer, and the same work item, which the broker
 * keeps once. Nothing here calls Teams.
 */
export class RecipientUpdates {
  constructor(private readonly deps: RecipientUpdatesDependencies) {}

  async update(
    key: RequestKey,
    recipient: Recipient,
    change: RecipientChange,
    log: Logger,
  ): Promise<RecipientChangeResult> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const result = await this.attempt(key, recipient, change, log);
      if (result !== "conflict") return result;
    }
    throw new Error("the recipient's copy kept changing while the update was being accepted");
  }

  private async attempt(
    key: RequestKey,
    recipient: Recipient,
    change: RecipientChange,
    log: Logger,
  ): Promise<RecipientChangeResult | "conflict"> {
    const stored = await this.deps.requests.get(key);
    if (stored === undefined) return { kind: "not-found", id: key.id, what: "request" };
    if (stored.state === "rejected")
      return this.refused(key, "this request was rejected: nothing of it was sent");
    if (stored.recalledAt !== undefined)
      return this.refused(key, "this request was recalled: it cannot be updated");
    const content = contentOf(stored);
    const row = await findRecipientCopy(this.deps, key, recipient);
    if (row === undefined || content === undefined)
      return { kind: "not-found", id: key.id, what: "recipient" };
    if (row.state !== "sent") return this.refused(key, notSent(row));

    const current = await this.deps.overrides.get(key, row.recipientKey);
    // What the copy is to show now: the given fields over what it is to show already.
    const base = withOverride(content, current);
    const message = change.message ?? base.message;
    const summary = change.summary ?? base.summary;
    const problem = activitySizeProblem(message, summary);
    if (problem !== undefined)
      return { kind: "invalid", errors: [{ path: "message", message: problem }] };
    const fingerprint = copyContentFingerprint({ message, summary });
    const correlationId = change.correlationId ?? stored.correlationId;
    if (current !== undefined && base.override !== undefined && current.fingerprint === fingerprint)
      return this.queued(row, current, correlationId, true);

    const written = await this.deps.overrides.put(
      key,
      {
        recipientKey: row.recipientKey,
        sequence: (current?.sequence ?? 0) + 1,
        revision: content.revision,
        message,
        summary,
        fingerprint,
        acceptedAt: this.deps.clock().toISOString(),
      },
      current,
    );
    if (written === "conflict") return written;
    log.info("Recipient update accepted", {
      recipient: recipientToken(row.recipientKey),
      revision: written.revision,
      override: written.sequence,
    });
    return this.queued(row, written, correlationId, false);
  }

  /** The copy's change queued (again, for a replay: the broker keeps one) and the answer. */
  private async queued(
    row: Delivery,
    override: RecipientOverride,
    correlationId: string | undefined,
    replay: boolean,
  ): Promise<RecipientChangeResult> {
    await this.deps.queue().enqueue([
      copyMessage({
        tenantId: row.tenantId,
        requestId: row.requestId,
        recipient: row.recipient,
        operation: "update",
        revision: override.revision,
        attempt: 1,
        override: override.sequence,
        ...(correlationId !== undefined ? { correlationId } : {}),
      }),
    ]);
    return {
      kind: "accepted",
      id: row.requestId,
      tenantId: row.tenantId,
      recipient: row.recipient,
      revision: override.revision,
      override: override.sequence,
      ...(replay ? { replay: true } : {}),
    };
  }

  private refused(key: RequestKey, message: string): RecipientChangeResult {
    return { kind: "refused", id: key.id, message };
  }
}

function notSent(row: Delivery): string {
  switch (row.state) {
    case "pending":
    case "sending":
    case "installing":
    case "waiting-for-chat":
      return "this recipient's copy is not sent yet: update the whole request, or try again once it is sent";
    case "recalled":
      return "this recipient's copy was recalled";
    default:
      return `this recipient's copy was never sent (${row.state}): there is nothing to update`;
  }
}
