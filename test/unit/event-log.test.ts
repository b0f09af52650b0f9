import {
  acceptedEvent,
  completedEvent,
  finalDeliveryEvent,
  rejectedEvent,
  soleRecipientCounts,
} from "../../shared/events/event-factory";
import { EventLog, type EventPage } from "../../shared/events/event-log";
import type { CloudEvent } from "../../shared/model/cloud-event";
import type { Delivery } from "../../shared/store/delivery-ledger";
import type { StoredRequest } from "../../shared/store/notification-requests";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const key = { tenantId: TENANT, id: "order-42" };
const at = (s: number) => ({ at: new Date(Date.UTC(2026, 11, 7, 9, 0, s)) });

function sent(recipient: string, s: number): CloudEvent {
  const aad = `0000000${recipient}-0000-4000-8000-000000000000`.slice(-36);
  return finalDeliveryEvent(
    {
      tenantId: TENANT,
      requestId: key.id,
      recipientKey: `aadObjectId:${aad}`,
      recipient: { aadObjectId: aad },
      state: "sent",
      attempts: 1,
      createdAt: "",
      updatedAt: "",
    },
    at(s),
  );
}

/** The log over a request row and ledger rows the test changes as it goes. */
function logOf(request: CloudEvent[], rows: CloudEvent[][]): EventLog {
  return new EventLog(
    { get: () => Promise.resolve({ ...key, events: request } as unknown as StoredRequest) },
    {
      list: async function* () {
        for (const events of rows) yield { events } as unknown as Delivery;
        await Promise.resolve();
      },
    },
  );
}

async function page(log: EventLog, after?: string, limit?: number): Promise<EventPage> {
  const found = await log.read(key, {
    ...(after !== undefined ? { after } : {}),
    ...(limit !== undefined ? { limit } : {}),
  });
  if (found.kind !== "found") throw new Error(found.kind);
  return found.page;
}

describe("a request's event log (the pull endpoint)", () => {
  it("pages in order with a cursor that stays put while nothing new comes", async () => {
    const request = [acceptedEvent(key, { scheduled: false, recipients: 2 }, at(0))];
    const rows = [[sent("1", 2)], [sent("2", 1)]];
    const log = logOf(request, rows);

    const first = await page(log, undefined, 2);
    expect(first.events.map((e) => e.time)).toEqual(
      [at(0).at, at(1).at].map((d) => d.toISOString()),
    );
    const second = await page(log, first.next, 2);
    expect(second.events).toHaveLength(1);
    const idle = await page(log, second.next);
    expect(idle).toEqual({ events: [], next: second.next, final: false });

    request.push(
      completedEvent(key, { state: "completed", counts: soleRecipientCounts("sent") }, at(3)),
    );
    const last = await page(log, idle.next);
    expect(last.events.map((e) => e.type)).toEqual(["herald.notification.completed"]);
    expect(last.final).toBe(true);
  });

  it("starts over from the first event when one stamped earlier was recorded late, so nothing is skipped", async () => {
    const request = [acceptedEvent(key, { scheduled: false, recipients: 2 }, at(0))];
    const rows: CloudEvent[][] = [[sent("1", 5)]];
    const log = logOf(request, rows);
    const first = await page(log);
    rows.push([sent("2", 3)]); // an instance whose clock lagged wrote it after the first page

    const again = await page(log, first.next);
    expect(again.events.map((e) => e.time)).toEqual([0, 3, 5].map((s) => at(s).at.toISOString()));
  });

  it("is not final for a rejected request sent again, fixed, until that one completes", async () => {
    const request = [
      rejectedEvent(key, [{ path: "recipients", message: "is empty" }], "m-1", at(0)),
      acceptedEvent(key, { scheduled: false, recipients: 1 }, at(1)),
    ];
    const log = logOf(request, []);
    expect((await page(log)).final).toBe(false);
    request.push(
      completedEvent(key, { state: "completed", counts: soleRecipientCounts("sent") }, at(2)),
    );
    expect((await page(log)).final).toBe(true);
    // What follows the final event (a read receipt) leaves it final.
    request.push({ ...sent("1", 4), type: "herald.delivery.read" });
    expect((await page(log)).final).toBe(true);
  });

  it("refuses a cursor it did not hand out", async () => {
    const log = logOf([], []);
    expect(await log.read(key, { after: "not-a-cursor" })).toEqual({ kind: "bad-cursor" });
  });
});
