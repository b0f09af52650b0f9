/** What a claim writes on a delivery row: who holds it, until when, and for which user. */
export interface Claim {
  readonly claimedBy: string;
  readonly claimHolder: string;
  readonly claimSession?: string | undefined;
  readonly claimExpiresAt: string;
  readonly deliveryCount: number;
  readonly teamsUserId: string;
  /** A card with buttons: the token of its reference (the row's own when it has one). */
  readonly cardToken?: string | undefined;
}
