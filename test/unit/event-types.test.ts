import { readFileSync } from "node:fs";
import { join } from "node:path";

import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";

import {
  acceptedEvent,
  cardActionEvent,
  completedEvent,
  deliveryEvent,
  finalDeliveryEvent,
  rejectedEvent,
  soleRecipientCounts,
} from "../../shared/events/event-factory";
import { orderKey } from "../../shared/events/event-log";
import {
  dataSchemaId,
  EVENT_TYPE_NAMES,
  EVENT_TYPES,
  eventDataJsonSchema,
  eventId,
} from "../../shared/events/event-types";
import type { CloudEvent } from "../../shared/model/cloud-event";
import type { Delivery } from "../../shared/store/delivery-ledger";

const TENANT = "72F988BF-86F1-41AF-91AB-2D7CD011DB47";
const request = { tenantId: TENANT, id: "order-42" };
const at = new Date("2026-12-07T00:00:00.000Z");
const row: Omit<Delivery, "etag"> = {
  tenantId: TENANT,
  requestId: "order-42",
  recipientKey: "aadObjectId:2f0c1d4e-5b6a-4c3d-9e8f-7a6b5c4d3e2f",
  recipient: { aadObjectId: "2f0c1d4e-5b6a-4c3d-9e8f-7a6b5c4d3e2f" },
  state: "sent",
  attempts: 1,
  activityId: "1733529600001",
  teamsUserId: "29:1abc",
  createdAt: at.toISOString(),
  updatedAt: at.toISOString(),
  completedAt: at.toISOString(),
};

/** One event of every type, as Herald's transitions build them. */
function oneOfEach(): CloudEvent[] {
  const context = { at, correlationId: "corr-1" };
  const counts = soleRecipientCounts("sent");
  return [
    acceptedEvent(request, { scheduled: false, recipients: 1 }, context),
    rejectedEvent(request, [{ path: "recipients", message: "is empty" }], "m-1", context),
    completedEvent(request, { state: "completed", counts }, context),
    deliveryEvent("herald.delivery.installed", { ...row, state: "waiting-for-chat" }, context),
    finalDeliveryEvent({ ...row, state: "sent" }, context),
    finalDeliveryEvent({ ...row, state: "unreachable", lastError: "403 blocked" }, context),
    finalDeliveryEvent({ ...row, state: "failed", lastError: "500" }, context),
    finalDeliveryEvent({ ...row, state: "rejected", lastError: "413" }, context),
    finalDeliveryEvent({ ...row, state: "duplicate", duplicateOf: row.recipientKey }, context),
    deliveryEvent("herald.delivery.read", { ...row, readAt: at.toISOString() }, context),
    cardActionEvent(
      row,
      {
        verb: "approve",
        type: "Action.Execute",
        at: at.toISOString(),
        inputs: { orderId: 4711, comment: "fine" },
        revision: 1,
      },
      context,
    ),
    deliveryEvent("herald.delivery.updated", { ...row, revision: 2 }, context),
    finalDeliveryEvent({ ...row, state: "recalled", revision: 2 }, context),
    finalDeliveryEvent({ ...row, state: "cancelled", activityId: undefined }, context),
  ];
}

describe("Herald's events", () => {
  it("has one example per type of the closed list, each valid against its published data schema", () => {
    const events = oneOfEach();
    expect(events.map((e) => e.type).sort()).toEqual([...EVENT_TYPE_NAMES].sort());
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    addFormats(ajv);
    for (const event of events) {
      const path = join(
        __dirname,
        `../../shared/notifications/event-schemas/${event.type}.schema.json`,
      );
      const published = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
      // Run `npm run schema:notifications` after changing a data schema.
      expect(published).toEqual(eventDataJsonSchema(event.type as keyof typeof EVENT_TYPES));
      expect(event.dataschema).toBe(published.$id);
      const validate = ajv.compile(published);
      expect({
        type: event.type,
        valid: validate(event.data),
        errors: validate.errors ?? null,
      }).toEqual({
        type: event.type,
        valid: true,
        errors: null,
      });
    }
  });

  it("writes structured CloudEvents 1.0 with the source, subject and correlation id a consumer filters on", () => {
    const sent = finalDeliveryEvent({ ...row, state: "sent" }, { at, correlationId: "corr-1" });
    expect(sent).toEqual({
      specversion: "1.0",
      id: expect.stringMatching(/^he-[A-Za-z0-9_-]{40}$/) as unknown,
      source: `/tenants/${TENANT.toLowerCase()}/notifications/order-42`,
      type: "herald.delivery.sent",
      subject: row.recipientKey,
      time: "2026-12-07T00:00:00.000Z",
      datacontenttype: "application/json",
      dataschema: dataSchemaId("herald.delivery.sent"),
      correlationid: "corr-1",
      data: {
        requestId: "order-42",
        tenantId: TENANT.toLowerCase(),
        recipient: row.recipient,
        state: "sent",
        attempts: 1,
        activityId: "1733529600001",
        revision: 1,
        teamsUserId: "29:1abc",
        completedAt: at.toISOString(),
      },
    });
  });

  it("derives the same id for the same transition and different ids for different ones", () => {
    const base = {
      tenantId: TENANT,
      requestId: "order-42",
      recipientKey: row.recipientKey,
      type: "herald.delivery.sent" as const,
      revision: 1,
    };
    expect(eventId(base)).toBe(eventId({ ...base, tenantId: TENANT.toLowerCase() }));
    const others = [
      { ...base, requestId: "order-43" },
      { ...base, recipientKey: "aadObjectId:other" },
      { ...base, type: "herald.delivery.read" as const },
      { ...base, revision: 2 },
      { ...base, tenantId: "5e2c7a9d-3b1f-4c8e-a6d4-9f0b2e7c1a35" },
    ].map(eventId);
    expect(new Set([eventId(base), ...others]).size).toBe(6);
    // A later transition at another time is still the same event: the id ignores the time.
    const later = finalDeliveryEvent({ ...row, state: "sent" }, { at: new Date(at.getTime() + 5) });
    expect(later.id).toBe(finalDeliveryEvent({ ...row, state: "sent" }, { at }).id);
  });

  it("orders one instant's events accepted first and the request's final event after its deliveries", () => {
    const context = { at };
    const completed = completedEvent(
      request,
      {
        state: "completed",
        counts: soleRecipientCounts("sent"),
      },
      context,
    );
    const sent = finalDeliveryEvent({ ...row, state: "sent" }, context);
    const accepted = acceptedEvent(request, { scheduled: false, recipients: 1 }, context);
    const sorted = [completed, sent, accepted].sort((a, b) => (orderKey(a) < orderKey(b) ? -1 : 1));
    expect(sorted.map((e) => e.type)).toEqual([
      "herald.notification.accepted",
      "herald.delivery.sent",
      "herald.notification.completed",
    ]);
  });
});
