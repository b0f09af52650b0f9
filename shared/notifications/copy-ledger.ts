import { deliveryEvent } from "../events/event-factory";
import type { CloudEvent } from "../model/cloud-event";
import type { Delivery, DeliveryLedger, DeliveryPatch } from "../store/delivery-ledger";
import { withEvents } from "../store/stored-events";
import type { EventOutbox } from "./event-outbox";

/**
 * What a request's update or recall did to one recipient's row, as senders are told of it:
 * `updated` (the copy shows a newer revision), `recalled` (the copy was deleted), `cancelled`
 * (never sent: the request was recalled first).
 */
export type CopyTransition = "updated" | "recalled" | "cancelled" | "unreachable" | "failed";

export type CopyWrite =
  | {
      readonly kind: "written";
      readonly row: Delivery;
      /** The transition the write made, if it made one (a retry's bookkeeping makes none). */
      readonly transition: CopyTransition | undefined;
    }
  | { readonly kind: "conflict" };

/** What a transition's event carries from the work that made it. */
export interface CopySource {
  readonly correlationId?: string | undefined;
}

/** A held change's claim, cleared by every write that ends it. */
export const RELEASED: DeliveryPatch = {
  changing: undefined,
  claimedBy: undefined,
  claimHolder: undefined,
  claimSession: undefined,
  claimExpiresAt: undefined,
  nextAttemptAt: undefined,
};

const EVENT_TYPES = {
  updated: "herald.delivery.updated",
  recalled: "herald.delivery.recalled",
  cancelled: "herald.delivery.cancelled",
  unreachable: "herald.delivery.unreachable",
  failed: "herald.delivery.failed",
} as const;

/**
 * The one place a copy's transition is written: ETag-conditional on the row as read, so of two
 * writers one wins and the other reads again. The transition's event (`herald.delivery.updated`,
 * `…recalled`, `…cancelled`) is written in the same write and published once it succeeded (the
 * outbox: event-outbox.ts).
 */
export class CopyLedger {
  constructor(
    private readonly ledger: Pick<DeliveryLedger, "update">,
    private readonly outbox: EventOutbox,
    private readonly clock: () => Date,
  ) {}

  /** The copy shows `revision` now. */
  updated(
    row: Delivery,
    revision: number,
    source: CopySource,
    patch: DeliveryPatch = {},
  ): Promise<CopyWrite> {
    return this.write(row, "updated", source, {
      ...RELEASED,
      lastError: undefined,
      lastStatus: undefined,
      ...patch,
      revision,
    });
  }

  /** The copy was deleted (or Teams says it is gone). */
  recalled(row: Delivery, source: CopySource, patch: DeliveryPatch = {}): Promise<CopyWrite> {
    return this.write(row, "recalled", source, {
      ...RELEASED,
      lastError: undefined,
      ...patch,
      state: "recalled",
      completedAt: this.clock().toISOString(),
    });
  }

  /** A row not sent yet when the request was recalled: never sent. */
  cancelled(row: Delivery, source: CopySource): Promise<CopyWrite> {
    return this.write(row, "cancelled", source, {
      ...RELEASED,
      state: "cancelled",
      lastError: undefined,
      completedAt: this.clock().toISOString(),
    });
  }

  /**
   * A change Teams refused for good: the copy's user cannot be reached (403), or a recall could
   * not delete it (`failed`).
   */
  ended(
    row: Delivery,
    state: "unreachable" | "failed",
    source: CopySource,
    patch: DeliveryPatch,
  ): Promise<CopyWrite> {
    return this.write(row, state, source, {
      ...RELEASED,
      ...patch,
      state,
      completedAt: this.clock().toISOString(),
    });
  }

  /** Bookkeeping of a change under way (its claim, a retry's error): no transition. */
  note(row: Delivery, patch: DeliveryPatch): Promise<CopyWrite> {
    return this.write(row, undefined, {}, patch);
  }

  private async write(
    row: Delivery,
    transition: CopyTransition | undefined,
    source: CopySource,
    patch: DeliveryPatch,
  ): Promise<CopyWrite> {
    const at = this.clock();
    const fresh: readonly CloudEvent[] =
      transition === undefined
        ? []
        : this.outbox.record(() => [
            deliveryEvent(
              EVENT_TYPES[transition],
              { ...row, ...patch, updatedAt: at.toISOString() },
              { at, correlationId: source.correlationId },
            ),
          ]);
    const written = await this.ledger.update(
      row,
      fresh.length === 0 ? patch : { ...patch, events: withEvents(row.events, fresh) },
    );
    if (written.kind === "conflict") return { kind: "conflict" };
    if (fresh.length > 0) await this.outbox.publish(written.row, fresh);
    return { kind: "written", row: written.row, transition };
  }
}
