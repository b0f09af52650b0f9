import type { Delivery } from "../store/delivery-ledger";
import type { UnreadIndex } from "../store/unread-index";
import type { EventOutbox } from "./event-outbox";

/**
 * What a delivery does for its events beyond the transition's own write: the user's unread entry
 * of a sent notification (a read receipt needs it), and the row's events published again when a
 * redelivery may follow a crash between a write and its publish.
 */
export class DeliveryEvents {
  constructor(
    private readonly outbox: EventOutbox,
    private readonly unread: Pick<UnreadIndex, "add">,
  ) {}

  /** A sent activity in the user's unread index, so their read receipt finds it. */
  async noteUnread(row: Delivery, activityId: string): Promise<void> {
    const teamsUserId = row.teamsUserId;
    if (!this.outbox.enabled || teamsUserId === undefined) return;
    await this.unread.add({
      tenantId: row.tenantId,
      teamsUserId,
      activityId,
      requestId: row.requestId,
      recipientKey: row.recipientKey,
    });
  }

  /**
   * The row's events go out again (same ids: the topic drops the copies), and a sent row's
   * unread entry is written again.
   */
  async republish(row: Delivery): Promise<void> {
    if (row.events === undefined || row.events.length === 0) return;
    await this.outbox.publish(row);
    if (row.state === "sent" && row.activityId !== undefined)
      await this.noteUnread(row, row.activityId);
  }
}
