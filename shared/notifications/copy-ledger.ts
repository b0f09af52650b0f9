import type { Delivery, DeliveryLedger, DeliveryPatch } from "../store/delivery-ledger";

/**
 * What a request's update or recall did to one recipient's row, as senders are told of it:
 * `updated` (the copy shows a newer revision), `recalled` (the copy was deleted), `cancelled`
 * (never sent: the request was recalled first).
 */
export type CopyTransition = "updated" | "recalled" | "cancelled";

export type CopyWrite =
  | {
      readonly kind: "written";
      readonly row: Delivery;
      /** The transition the write made, if it made one (a retry's bookkeeping makes none). */
      readonly transition: CopyTransition | undefined;
    }
  | { readonly kind: "conflict" };

/** A held change's claim, cleared by every write that ends it. */
export const RELEASED: DeliveryPatch = {
  changing: undefined,
  claimedBy: undefined,
  claimHolder: undefined,
  claimSession: undefined,
  claimExpiresAt: undefined,
  nextAttemptAt: undefined,
};

/**
 * The one place a copy's transition is written: ETag-conditional on the row as read, so of two
 * writers one wins and the other reads again. The write returns the transition it made, which
 * is where its event goes (the event is written with the transition, then published).
 */
export class CopyLedger {
  constructor(
    private readonly ledger: Pick<DeliveryLedger, "update">,
    private readonly clock: () => Date,
  ) {}

  /** The copy shows `revision` now. */
  updated(row: Delivery, revision: number, patch: DeliveryPatch = {}): Promise<CopyWrite> {
    return this.write(row, "updated", {
      ...RELEASED,
      lastError: undefined,
      lastStatus: undefined,
      ...patch,
      revision,
    });
  }

  /** The copy was deleted (or Teams says it is gone). */
  recalled(row: Delivery, patch: DeliveryPatch = {}): Promise<CopyWrite> {
    return this.write(row, "recalled", {
      ...RELEASED,
      lastError: undefined,
      ...patch,
      state: "recalled",
      completedAt: this.clock().toISOString(),
    });
  }

  /** A row not sent yet when the request was recalled: never sent. */
  cancelled(row: Delivery): Promise<CopyWrite> {
    return this.write(row, "cancelled", {
      ...RELEASED,
      state: "cancelled",
      lastError: undefined,
      completedAt: this.clock().toISOString(),
    });
  }

  /** Bookkeeping of a change under way (its claim, a retry's error): no transition. */
  note(row: Delivery, patch: DeliveryPatch): Promise<CopyWrite> {
    return this.write(row, undefined, patch);
  }

  private async write(
    row: Delivery,
    transition: CopyTransition | undefined,
    patch: DeliveryPatch,
  ): Promise<CopyWrite> {
    const written = await this.ledger.update(row, patch);
    return written.kind === "written"
      ? { kind: "written", row: written.row, transition }
      : { kind: "conflict" };
  }
}
