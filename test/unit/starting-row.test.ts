import { scheduledAgain, startingRow } from "../../shared/notifications/starting-row";
import { deliveryWork } from "../../shared/notifications/work-items";
import type { Delivery } from "../../shared/store/delivery-ledger";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const written = {
  etag: `W/"datetime'2026-12-07T13%3A00%3A00.1234567Z'"`,
  createdAt: "2026-12-07T13:00:00.123Z",
};
const recipient = { aadObjectId: "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9" };
const key = `aadObjectId:${recipient.aadObjectId}`;

/** Which of the ledger's two ways the start took: a read, or the row as written. */
function ledger() {
  const calls: string[] = [];
  // Which row does not matter here, only which way it came.
  const row = { state: "pending" } as Delivery;
  return {
    calls,
    port: {
      ensure: () => {
        calls.push("read");
        return Promise.resolve(row);
      },
      asWritten: () => {
        calls.push("as written");
        return row;
      },
    },
  };
}

describe("the row a delivery starts from", () => {
  it("claims a fan-out's first try on its row as written, and reads it on every later try", async () => {
    const first = deliveryWork("req-1", TENANT, recipient, 1, undefined, { written });
    const retry = { ...first, attempt: 2 };
    const cases = [
      { work: first, deliveryCount: 1 },
      { work: first, deliveryCount: 2 }, // the broker's redelivery of the same message
      { work: retry, deliveryCount: 1 },
      { work: deliveryWork("req-1", TENANT, recipient, 1, undefined), deliveryCount: 1 },
    ];
    const seen: string[][] = [];
    for (const { work, deliveryCount } of cases) {
      const l = ledger();
      await startingRow(l.port, work, key, { deliveryCount }, "queue");
      seen.push(l.calls);
    }

    expect(seen).toEqual([["as written"], ["read"], ["read"], ["read"]]);
  });

  it("neither reads nor rebuilds a row the dispatch's own delivery has not written yet", async () => {
    const l = ledger();
    const work = deliveryWork("req-1", TENANT, recipient, 1, undefined, { sole: true });

    await expect(startingRow(l.port, work, key, { deliveryCount: 1 }, "dispatch")).resolves.toBe(
      undefined,
    );
    expect(l.calls).toEqual([]);
  });

  it("puts a work item back on the queue without its row as written, so the next try reads it", () => {
    const work = deliveryWork("req-1", TENANT, recipient, 1, "corr-1", {
      distinctPeople: true,
      written,
    });

    expect(scheduledAgain(work)).toEqual({
      requestId: "req-1",
      tenantId: TENANT,
      recipient,
      attempt: 1,
      correlationId: "corr-1",
      distinctPeople: true,
    });
  });
});
