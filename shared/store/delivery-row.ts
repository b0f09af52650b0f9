import type { CloudEvent } from "../model/cloud-event";
import type { Recipient } from "../model/recipient";
import type { DeliveryState } from "./delivery-states";
import type { RecordedAction } from "./recorded-actions";

/**
 * A delivery ledger row as Herald reads and writes it (store/delivery-ledger.ts keeps the rows):
 * one per request and recipient.
 */
export interface Delivery {
  readonly tenantId: string;
  readonly requestId: string;
  readonly recipientKey: string;
  readonly recipient: Recipient;
  readonly state: DeliveryState;
  /** Calls to Teams made for this delivery (one per claim). */
  readonly attempts: number;
  /** The Service Bus delivery count of the message that last worked on this row. */
  readonly deliveryCount?: number | undefined;
  readonly lastError?: string | undefined;
  readonly lastStatus?: number | undefined;
  readonly activityId?: string | undefined;
  readonly conversationId?: string | undefined;
  /**
   * The request revision the copy in the chat shows (undefined: 1, the request as first sent).
   * Written with `sent`, and by each update of the copy, only ever upwards.
   */
  readonly revision?: number | undefined;
  /** A change of the sent copy holds the claim (`claimedBy`, …): which one. */
  readonly changing?: "update" | "recall" | undefined;
  /** An update found the copy gone (404) and sent it afresh: at most once per row. */
  readonly resent?: boolean | undefined;
  /** The user's `29:` id once the recipient was resolved. */
  readonly teamsUserId?: string | undefined;
  /** The person whose per-user guard this row took last (`29:` id, or `aad:` + AAD id). */
  readonly guardOf?: string | undefined;
  /** Proactive install: the user's AAD object id as Graph resolved it. */
  readonly aadObjectId?: string | undefined;
  /** Proactive install: when Graph confirmed the app installed (the wait for the chat starts). */
  readonly installedAt?: string | undefined;
  /** Proactive install: the app's installation for the user, once Graph named it. */
  readonly installationId?: string | undefined;
  /** `duplicate`: the recipient key of the row that delivers to the same person. */
  readonly duplicateOf?: string | undefined;
  /** Who the recipient is, as Herald learned it (a group member as Graph named them): display only. */
  readonly userPrincipalName?: string | undefined;
  readonly displayName?: string | undefined;
  /** `<messageId>#<deliveryCount>` of the invocation holding the `sending` claim. */
  readonly claimedBy?: string | undefined;
  /** The process that made the claim (notifications/claim-holders.ts). */
  readonly claimHolder?: string | undefined;
  /** The broker session the claim was made in (the tenant's), when it came through one. */
  readonly claimSession?: string | undefined;
  readonly claimExpiresAt?: string | undefined;
  readonly nextAttemptAt?: string | undefined;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly completedAt?: string | undefined;
  /** When Teams said the user read the message (a read receipt); set once. */
  readonly readAt?: string | undefined;
  /** The token of the card's buttons' reference (model/card-actions.ts), kept once written. */
  readonly cardToken?: string | undefined;
  /**
   * The verb whose answer the copy is to show once clicked, and the verb whose answer it shows
   * (notifications/answered-copy.ts): they differ while the click's replacement is under way.
   */
  readonly answer?: string | undefined;
  readonly answerShown?: string | undefined;
  /** The sequence of the per-recipient update the copy shows (store/recipient-overrides.ts). */
  readonly override?: number | undefined;
  /** The recipient's button clicks, one per verb, in order (notifications/card-clicks.ts). */
  readonly actions?: readonly RecordedAction[] | undefined;
  /**
   * The events this row's transitions reported, in order (stored-events.ts): each written by the
   * transition's own conditional write, then published.
   */
  readonly events?: readonly CloudEvent[] | undefined;
  /** The row's ETag: updates are conditional on it. */
  readonly etag: string;
}

/** Fields an update may change. `undefined` clears a field. */
export type DeliveryPatch = Partial<
  Omit<Delivery, "tenantId" | "requestId" | "recipientKey" | "recipient" | "createdAt" | "etag">
>;

export interface NewDelivery {
  readonly recipientKey: string;
  readonly recipient: Recipient;
  /** Default `pending`; a final state records an outcome known up front (unknown team…). */
  readonly state?: DeliveryState;
  readonly lastError?: string;
  /** The events of a row created final (its transition is its creation). */
  readonly events?: readonly CloudEvent[];
  /** Who the recipient is, when known before delivery (Graph's names of a group's members). */
  readonly userPrincipalName?: string | undefined;
  readonly displayName?: string | undefined;
}
