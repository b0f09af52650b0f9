import { type Recipient, recipientOfKey } from "../model/recipient";
import type { Delivery, DeliveryState } from "../store/delivery-ledger";
import { FINAL_DELIVERY_STATES } from "../store/delivery-states";
import { withoutUndefined } from "../store/entities";

/**
 * A recipient as callers see it: the status API's recipient fields, the counts over them, and
 * the same fields in every delivery event's `data`. Shared so the two can never disagree.
 *
 * States: `sending` is still `pending` to callers; `duplicate` is a second name of a person
 * another recipient already reaches (`duplicateOf` says which); `cancelled`: never sent, the
 * request was recalled first; `recalled`: sent, then deleted.
 */
export const RECIPIENT_STATES = ["pending", ...FINAL_DELIVERY_STATES] as const;

export type RecipientState = (typeof RECIPIENT_STATES)[number];

/** Where a pending recipient Herald has never seen stands in its proactive install. */
export type RecipientStep = "installing" | "waiting-for-chat";

export interface RecipientView {
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
  /** The sequence of the per-recipient update the copy shows (none: the request's content). */
  readonly override?: number;
  readonly teamsUserId?: string;
  /**
   * Who the recipient is, when Herald knows it and the recipient does not say (a group's
   * member, named by AAD id: Graph's UPN and display name).
   */
  readonly userPrincipalName?: string;
  readonly displayName?: string;
  /** `duplicate`: the recipient (of this request) through whom this person is reached. */
  readonly duplicateOf?: Recipient;
  /** When the app was installed for them through Microsoft Graph (proactive install). */
  readonly installedAt?: string;
  readonly completedAt?: string;
  /** When Teams said they read it (a read receipt; none when receipts are off). */
  readonly readAt?: string;
}

export function visibleState(state: DeliveryState): RecipientState {
  return state === "sending" || state === "installing" || state === "waiting-for-chat"
    ? "pending"
    : state;
}

/** What a sent (or recalled) copy shows; nothing for a recipient never sent. */
function shownRevision(row: Omit<Delivery, "etag">): number | undefined {
  return row.state === "sent" || row.state === "recalled" || row.activityId !== undefined
    ? (row.revision ?? 1)
    : undefined;
}

function stepOf(state: DeliveryState): RecipientStep | undefined {
  return state === "installing" || state === "waiting-for-chat" ? state : undefined;
}

/** The caller-facing fields of a ledger row. */
export function recipientView(row: Omit<Delivery, "etag">): RecipientView {
  return withoutUndefined({
    recipient: row.recipient,
    state: visibleState(row.state),
    step: stepOf(row.state),
    attempts: row.attempts,
    lastError: row.lastError,
    activityId: row.activityId,
    revision: shownRevision(row),
    override: row.override,
    teamsUserId: row.teamsUserId,
    userPrincipalName: row.userPrincipalName,
    displayName: row.displayName,
    duplicateOf: row.duplicateOf === undefined ? undefined : recipientOfKey(row.duplicateOf),
    installedAt: row.installedAt,
    completedAt: row.completedAt,
    readAt: row.readAt,
  });
}

/** Recipients per state, all of them (`total`), and how many have read it (`read`). */
export type RecipientCounts = Readonly<Record<RecipientState | "total" | "read", number>>;

/** Counts as they are added up, row by row. */
export class CountsTally {
  private readonly counts: Record<RecipientState | "total" | "read", number> = {
    total: 0,
    ...(Object.fromEntries(RECIPIENT_STATES.map((state) => [state, 0])) as Record<
      RecipientState,
      number
    >),
    read: 0,
  };

  add(state: RecipientState, read: boolean): void {
    this.counts.total += 1;
    this.counts[state] += 1;
    if (read) this.counts.read += 1;
  }

  get value(): RecipientCounts {
    return { ...this.counts };
  }
}
