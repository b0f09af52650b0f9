import { guardDeliveryWork, guardDispatchWork } from "../../shared/notifications/work-guards";
import {
  deliveryMessage,
  deliveryWork,
  deliveryWorkSchema,
  dispatchMessage,
  dispatchWorkSchema,
} from "../../shared/notifications/work-items";

const TENANT = "8f0c2a4e-0000-4000-8000-000000000001";
const USER = "3b1d7c2e-0000-4000-8000-000000000002";

/** A work item's body as it travels: JSON, as the broker hands it back. */
const travelled = (body: unknown): unknown => JSON.parse(JSON.stringify(body));

describe("work item guards", () => {
  describe("dispatch", () => {
    it("passes the dispatch the intake writes, equal to what the full schema gives", () => {
      const body = travelled(
        dispatchMessage({
          tenantId: TENANT,
          requestId: "req-1",
          correlationId: "corr-1",
          request: {
            message: { text: "Your order shipped", format: "markdown" },
            summary: "Order",
            recipients: [{ aadObjectId: USER }],
          },
        }).body,
      );

      expect(guardDispatchWork(body)).toEqual({
        ok: true,
        value: dispatchWorkSchema.parse(body),
      });
    });

    it("drops a dispatch without a request id, naming the field", () => {
      expect(guardDispatchWork({ tenantId: TENANT })).toEqual({
        ok: false,
        errors: "requestId: must be 1-128 characters",
      });
    });

    it("drops a dispatch whose carried request names no recipients", () => {
      const body = {
        tenantId: TENANT,
        requestId: "req-1",
        request: { message: { text: "hi" }, recipients: [] },
      };

      expect(guardDispatchWork(body)).toEqual({
        ok: false,
        errors: "request.recipients: must be a non-empty array",
      });
    });
  });

  describe("delivery", () => {
    it("passes a fanned-out delivery, equal to what the full schema gives", () => {
      const body = travelled(
        deliveryMessage(deliveryWork("req-1", TENANT, { aadObjectId: USER }, 2, "corr-1")).body,
      );

      expect(guardDeliveryWork(body)).toEqual({
        ok: true,
        value: deliveryWorkSchema.parse(body),
      });
    });

    it("passes a fan-out's delivery marked as one of distinct people, as the full schema does", () => {
      const body = travelled(
        deliveryMessage(
          deliveryWork("req-1", TENANT, { aadObjectId: USER }, 1, undefined, {
            distinctPeople: true,
          }),
        ).body,
      );

      expect(guardDeliveryWork(body)).toEqual({ ok: true, value: deliveryWorkSchema.parse(body) });
      expect(guardDeliveryWork(body)).toMatchObject({ value: { distinctPeople: true } });
    });

    it("passes a fan-out's delivery carrying its row as written, as the full schema does", () => {
      const written = {
        etag: `W/"datetime'2026-12-07T13%3A00%3A00.1234567Z'"`,
        createdAt: "2026-12-07T13:00:00.123Z",
      };
      const body = travelled(
        deliveryMessage(
          deliveryWork("req-1", TENANT, { aadObjectId: USER }, 1, undefined, { written }),
        ).body,
      );

      expect(guardDeliveryWork(body)).toEqual({ ok: true, value: deliveryWorkSchema.parse(body) });
      expect(guardDeliveryWork(body)).toMatchObject({ value: { written } });
    });

    it("drops a delivery whose carried row has no ETag or no time", () => {
      const base = {
        requestId: "req-1",
        tenantId: TENANT,
        recipient: { aadObjectId: USER },
        attempt: 1,
      };
      const at = "2026-12-07T13:00:00.123Z";
      const etag = `W/"datetime'2026-12-07T13%3A00%3A00.1234567Z'"`;
      for (const written of [
        { createdAt: at },
        { etag },
        { etag: "*", createdAt: at }, // would make the claim unconditional
        { etag, createdAt: "2026-12-07" },
        etag,
      ])
        expect(guardDeliveryWork({ ...base, written })).toEqual({
          ok: false,
          errors: "written: must be an ETag and a time",
        });
    });

    it("drops a delivery whose distinctPeople is not a boolean", () => {
      const body = {
        requestId: "req-1",
        tenantId: TENANT,
        recipient: { aadObjectId: USER },
        attempt: 1,
        distinctPeople: "yes",
      };

      expect(guardDeliveryWork(body)).toEqual({
        ok: false,
        errors: "distinctPeople: must be a boolean",
      });
    });

    it("drops a delivery whose recipient has two identities", () => {
      const body = {
        requestId: "req-1",
        tenantId: TENANT,
        recipient: { aadObjectId: USER, teamsUserId: "29:x" },
        attempt: 1,
      };

      expect(guardDeliveryWork(body)).toEqual({
        ok: false,
        errors: "recipient: must have exactly one recipient identity",
      });
    });
  });
});
