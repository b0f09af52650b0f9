import { deliveryEvent } from "../events/event-factory";
import type { Logger } from "../logging";
import type { Delivery, DeliveryLedger } from "../store/delivery-ledger";
import { withEvents } from "../store/stored-events";
import type { UnreadEntry, UnreadIndex } from "../store/unread-index";
import { mapLimited } from "../util/collections";
import type { EventOutbox } from "./event-outbox";
import { metric } from "./metrics";
import type { ReadReceiptWork } from "./work-items";

export interface ReadReceiptDependencies {
  readonly ledger: Pick<DeliveryLedger, "get" | "update">;
  readonly unread: Pick<UnreadIndex, "upTo" | "remove">;
  readonly outbox: EventOutbox;
}

export interface ReadReceiptResult {
  /** Deliveries this receipt marked read. */
  readonly read: number;
  /** Unread entries whose delivery was read already (their event published again). */
  readonly already: number;
}

/**
 * A read receipt from a user's 1:1 chat (Teams sends one when the user read the chat, if the
 * app asks for `ChatMessageReadReceipt.Read.Chat` and neither the admin nor the user turned
 * receipts off: https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/conversation-messages#read-receipts).
 * Every message with an id up to `lastReadMessageId` is read: the user's unread entries up to it
 * are looked up (one range query), each delivery gets `readAt` and its `herald.delivery.read`
 * in one conditional write, once, and the entry goes. Later messages stay unread.
 */
export class ReadReceipts {
  constructor(private readonly deps: ReadReceiptDependencies) {}

  async apply(work: ReadReceiptWork, log: Logger): Promise<ReadReceiptResult> {
    if (!this.deps.outbox.enabled) return { read: 0, already: 0 };
    const entries: UnreadEntry[] = [];
    for await (const entry of this.deps.unread.upTo(
      work.tenantId,
      work.teamsUserId,
      work.lastReadMessageId,
    ))
      entries.push(entry);
    const outcomes = await mapLimited(entries, 4, async (entry) => {
      const outcome = await this.markRead(entry, new Date(work.readAt));
      // Removed only once the read is written and published: a crash before comes back to it.
      await this.deps.unread.remove(entry);
      return outcome;
    });
    const read = outcomes.filter((o) => o === "read").length;
    const already = outcomes.filter((o) => o === "already").length;
    if (read > 0) metric(log, "notifications.read", read);
    log.info("Read receipt applied", { read, already, unread: entries.length });
    return { read, already };
  }

  private async markRead(entry: UnreadEntry, at: Date): Promise<"read" | "already" | "none"> {
    const key = { tenantId: entry.tenantId, id: entry.requestId };
    let row = await this.deps.ledger.get(key, entry.recipientKey);
    for (let attempt = 0; attempt < 5 && row !== undefined; attempt++) {
      if (row.readAt !== undefined) {
        await this.deps.outbox.publish(row, readEvents(row));
        return "already";
      }
      if (row.state !== "sent") return "none";
      const current: Delivery = row;
      const readTime = notBeforeSent(at, current);
      const readAt = readTime.toISOString();
      const fresh = this.deps.outbox.record(() => [
        deliveryEvent(
          "herald.delivery.read",
          { ...current, readAt },
          { at: readTime, correlationId: current.events?.[0]?.correlationid },
        ),
      ]);
      const updated = await this.deps.ledger.update(current, {
        readAt,
        events: withEvents(current.events, fresh),
      });
      if (updated.kind === "written") {
        await this.deps.outbox.publish(updated.row, fresh);
        return "read";
      }
      row = await this.deps.ledger.get(key, entry.recipientKey);
    }
    return "none";
  }
}

/**
 * The receipt's time, or just after the delivery's last event if that is not earlier: Teams' clock and Herald's
 * differ, and a message is never read before it was sent (nor its read event before `sent`).
 */
function notBeforeSent(at: Date, row: Delivery): Date {
  let sent = Number.NEGATIVE_INFINITY;
  for (const event of row.events ?? []) sent = Math.max(sent, Date.parse(event.time));
  if (row.completedAt !== undefined) sent = Math.max(sent, Date.parse(row.completedAt));
  return at.getTime() > sent ? at : new Date(sent + 1);
}

function readEvents(row: Delivery) {
  return (row.events ?? []).filter((e) => e.type === "herald.delivery.read");
}
