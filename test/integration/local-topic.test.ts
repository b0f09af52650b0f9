import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { type QueueDrainer, startDraining } from "../../shared/local-host/queue-drain";
import { LocalTopic } from "../../shared/queue/local-topic";
import { FilterError } from "../../shared/queue/sql-filter";
import { eventually } from "../support/local-broker";

const TENANT_A = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const TENANT_B = "5e2c7a9d-3b1f-4c8e-a6d4-9f0b2e7c1a35";

/** An event as issue 22's publisher will send it: CloudEvents body, filterable properties. */
function event(
  tenantId: string,
  type: string,
  n: number,
  extra: Record<string, string | number> = {},
) {
  return {
    body: { specversion: "1.0", id: `${tenantId}-${n}`, type, data: { n } },
    messageId: `${tenantId}-${n}`,
    applicationProperties: { tenantId, type, requestId: `r-${n}`, ...extra },
  };
}

describe("LocalTopic", () => {
  let directory: string;
  let topic: LocalTopic;
  const drainers: QueueDrainer[] = [];

  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), "herald-topic-"));
    topic = new LocalTopic({ directory });
  });
  afterEach(async () => {
    await Promise.all(drainers.splice(0).map((d) => d.stop(1000)));
    rmSync(directory, { recursive: true, force: true });
  });

  const bodiesOf = (name: string) =>
    topic
      .subscription(name)
      .receive(100)
      .map((m) => m.body);
  const idsOf = (name: string) =>
    topic
      .subscription(name)
      .receive(100)
      .map((m) => m.messageId);

  it("never shows a tenant's subscription another tenant's events", () => {
    topic.subscribe("lob-a", `tenantId = '${TENANT_A}'`);
    topic.subscribe("lob-b", `tenantId IN ('${TENANT_B}')`);
    topic.publish([
      event(TENANT_A, "herald.delivery.sent", 1),
      event(TENANT_B, "herald.delivery.sent", 2),
    ]);
    topic.publish([event(TENANT_A, "herald.notification.completed", 3)]);

    expect(idsOf("lob-a")).toEqual([`${TENANT_A}-1`, `${TENANT_A}-3`]);
    expect(idsOf("lob-b")).toEqual([`${TENANT_B}-2`]);
  });

  it("gives a subscription without a filter every message (1=1), with its properties", () => {
    topic.subscribe("everything");
    topic.publish([
      event(TENANT_A, "herald.delivery.sent", 1),
      event(TENANT_B, "herald.delivery.failed", 2),
    ]);

    const [first] = topic.subscription("everything").receive(1);
    expect(first).toMatchObject({
      messageId: `${TENANT_A}-1`,
      applicationProperties: { tenantId: TENANT_A, type: "herald.delivery.sent", requestId: "r-1" },
      deliveryCount: 1,
    });
    expect(bodiesOf("everything")).toHaveLength(1);
  });

  it.each([
    ["type <> 'herald.delivery.sent'", [2, 3, 4]],
    ["type != 'herald.delivery.sent' AND attempts > 1", [3, 4]],
    ["type NOT IN ('herald.delivery.sent', 'herald.delivery.failed')", [3, 4]],
    ["type LIKE 'herald.notification.%'", [3]],
    ["type LIKE 'HERALD.%'", []],
    ["type NOT LIKE 'herald.delivery._ent'", [2, 3, 4]],
    ["[Type] LIKE 'herald\\_%' ESCAPE '\\'", []],
    ["attempts IS NULL", [1, 2]],
    ["user.attempts IS NOT NULL AND NOT (attempts = 2 OR attempts >= 10)", [4]],
    ["\"requestId\" = 'r-1' OR TYPE = 'herald.delivery.failed'", [1, 2]],
    ["attempts = 2.0 OR attempts < -1", [3]],
    ["missing = 'x' OR missing <> 'x'", []],
    ["NOT missing = 'x'", []],
    ["1=1", [1, 2, 3, 4]],
  ])("filters with %s as Service Bus does", (filter, expected) => {
    topic.subscribe("sub", filter);
    topic.publish([
      event(TENANT_A, "herald.delivery.sent", 1),
      event(TENANT_A, "herald.delivery.failed", 2),
      event(TENANT_A, "herald.notification.completed", 3, { attempts: 2 }),
      event(TENANT_A, "herald.delivery.installed", 4, { attempts: 5 }),
    ]);

    expect(bodiesOf("sub").map((b) => (b as { data: { n: number } }).data.n)).toEqual(expected);
  });

  it.each([
    ["an unfinished comparison", "tenantId = ", /Filter "tenantId = "/],
    ["an operator Service Bus does not have", "tenantId == 'a'", /Filter/],
    ["a system property", "sys.Label = 'x'", /system properties/],
    ["a second statement", "tenantId = 'a'; DROP TABLE messages", /unexpected text at 15/],
    ["a subquery", "tenantId = (SELECT 1)", /Filter/],
    ["1,025 characters", "x".repeat(1025), /at most 1024/],
  ])("refuses a filter with %s, with a clear error", (_what, filter, message) => {
    expect(() => topic.subscribe("bad", filter)).toThrow(FilterError);
    expect(() => topic.subscribe("bad", filter)).toThrow(message);
    expect(topic.subscriptions()).toEqual([]);
  });

  it("copies a message to the subscriptions in the send's transaction, and drops a duplicate id", () => {
    topic.subscribe("a");
    topic.subscribe("b", `tenantId = '${TENANT_A}'`);
    topic.publish([event(TENANT_A, "herald.delivery.sent", 1)]);
    topic.publish([event(TENANT_A, "herald.delivery.sent", 1)]); // redelivered publish, same event id

    expect(topic.subscription("a").counts()).toMatchObject({ active: 1 });
    expect(topic.subscription("b").counts()).toMatchObject({ active: 1 });
  });

  it("dead-letters a subscription's message after its last delivery, as a queue does", async () => {
    topic.subscribe("flaky");
    const subscription = topic.subscription("flaky", { maxDeliveryCount: 3 });
    topic.publish([event(TENANT_A, "herald.delivery.sent", 1)]);
    const deliveries: unknown[] = [];
    drainers.push(
      startDraining(
        subscription,
        (_body, context) => {
          deliveries.push(context.triggerMetadata?.deliveryCount);
          throw new Error("consumer down");
        },
        { functionName: "events", retryDelayMs: 5, logHandler: () => undefined },
      ),
    );

    const [dead] = await eventually(
      () => subscription.deadLetters().length > 0 && subscription.deadLetters(),
    );

    expect(deliveries).toEqual([1, 2, 3]);
    expect(dead).toMatchObject({
      messageId: `${TENANT_A}-1`,
      reason: "MaxDeliveryCountExceeded",
      applicationProperties: { tenantId: TENANT_A },
    });
    expect(dead!.description).toContain("consumer down");
  });
});
