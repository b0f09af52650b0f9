import type { ServiceBusMessage, ServiceBusMessageBatch } from "@azure/service-bus";

import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { type QueueSender, ServiceBusQueue } from "../../shared/queue/service-bus-queue";

/**
 * A fake of the SDK's sender: batches that fill up by serialised size, as the real ones do,
 * and a record of every send and schedule call. The seam is the SDK boundary, nothing of ours.
 */
class FakeSender {
  readonly sentBatches: ServiceBusMessage[][] = [];
  readonly scheduled: { messages: ServiceBusMessage[]; at: Date }[] = [];
  closed = false;

  constructor(private readonly maxBatchBytes = 1_000) {}

  asSender(): QueueSender {
    return {
      createMessageBatch: () => Promise.resolve(this.batch()),
      sendMessages: (batch) => {
        this.sentBatches.push([
          ...(batch as unknown as { messages: ServiceBusMessage[] }).messages,
        ]);
        return Promise.resolve();
      },
      scheduleMessages: (messages, at) => {
        this.scheduled.push({ messages: [messages].flat(), at });
        return Promise.resolve([]);
      },
      close: () => {
        this.closed = true;
        return Promise.resolve();
      },
    };
  }

  private batch(): ServiceBusMessageBatch {
    const messages: ServiceBusMessage[] = [];
    let size = 0;
    const max = this.maxBatchBytes;
    return {
      messages,
      get count() {
        return messages.length;
      },
      get sizeInBytes() {
        return size;
      },
      maxSizeInBytes: max,
      tryAddMessage(message: ServiceBusMessage) {
        const bytes = Buffer.byteLength(JSON.stringify(message));
        if (size + bytes > max) return false;
        messages.push(message);
        size += bytes;
        return true;
      },
    } as unknown as ServiceBusMessageBatch;
  }
}

describe("ServiceBusQueue", () => {
  it("maps our message to Service Bus: message id, correlation id, application properties, JSON", async () => {
    const fake = new FakeSender();
    const queue = new ServiceBusQueue(fake.asSender());
    await queue.enqueue([
      {
        body: { id: "req-1", hello: "world" },
        messageId: "req-1",
        correlationId: "corr-1",
        applicationProperties: { [WORK_KIND_PROPERTY]: "delivery", attempt: 2 },
      },
    ]);
    expect(fake.sentBatches).toEqual([
      [
        {
          body: { id: "req-1", hello: "world" },
          messageId: "req-1",
          correlationId: "corr-1",
          contentType: "application/json",
          applicationProperties: { heraldKind: "delivery", attempt: 2 },
        },
      ],
    ]);
  });

  it("sends an event to the topic as structured CloudEvents JSON with its filterable properties", async () => {
    const fake = new FakeSender();
    const topic = new ServiceBusQueue(fake.asSender());
    const event = { specversion: "1.0", id: "he-1", type: "herald.delivery.sent" };
    await topic.enqueue([
      {
        body: event,
        messageId: "he-1",
        contentType: "application/cloudevents+json",
        applicationProperties: { tenantId: "t", type: "herald.delivery.sent", requestId: "r" },
      },
    ]);
    expect(fake.sentBatches).toEqual([
      [
        {
          body: event,
          messageId: "he-1",
          contentType: "application/cloudevents+json",
          applicationProperties: { tenantId: "t", type: "herald.delivery.sent", requestId: "r" },
        },
      ],
    ]);
  });

  it("sends many messages in as few batches as fit, in order", async () => {
    const fake = new FakeSender(1_000);
    const queue = new ServiceBusQueue(fake.asSender());
    const messages = Array.from({ length: 50 }, (_, i) => ({
      body: { n: i },
      messageId: `m-${i}`,
    }));
    await queue.enqueue(messages);
    expect(fake.sentBatches.length).toBeGreaterThan(1);
    expect(fake.sentBatches.length).toBeLessThan(50);
    expect(fake.sentBatches.flat().map((m) => m.messageId)).toEqual(
      messages.map((m) => m.messageId),
    );
  });

  it("schedules a message for its enqueue time", async () => {
    const fake = new FakeSender();
    const queue = new ServiceBusQueue(fake.asSender());
    const at = new Date("2030-01-01T08:00:00Z");
    await queue.schedule(
      { body: { id: "r" }, messageId: "r", applicationProperties: { requestId: "r" } },
      at,
    );
    expect(fake.scheduled).toEqual([
      {
        at,
        messages: [
          {
            body: { id: "r" },
            messageId: "r",
            contentType: "application/json",
            applicationProperties: { requestId: "r" },
          },
        ],
      },
    ]);
  });

  it("refuses a message larger than a whole batch instead of dropping it", async () => {
    const fake = new FakeSender(100);
    const queue = new ServiceBusQueue(fake.asSender());
    await expect(queue.enqueue([{ body: "x".repeat(500), messageId: "big" }])).rejects.toThrow(
      /big is larger than a Service Bus batch/,
    );
  });

  it("sets each work item's session id on a session-enabled queue", async () => {
    const fake = new FakeSender();
    const queue = new ServiceBusQueue(fake.asSender(), undefined, { sessions: true });
    await queue.enqueue([{ body: { tenantId: "t-1" }, messageId: "w-1", sessionId: "t-1" }]);
    await queue.schedule(
      { body: { tenantId: "t-2" }, messageId: "w-2", sessionId: "t-2" },
      new Date("2030-01-01T08:00:00Z"),
    );
    expect(fake.sentBatches.flat().map((m) => m.sessionId)).toEqual(["t-1"]);
    expect(fake.scheduled.flatMap((s) => s.messages).map((m) => m.sessionId)).toEqual(["t-2"]);
  });

  it("refuses a message without a session id on a session-enabled queue before sending any", async () => {
    const fake = new FakeSender();
    const queue = new ServiceBusQueue(fake.asSender(), undefined, { sessions: true });
    await expect(
      queue.enqueue([
        { body: {}, messageId: "ok", sessionId: "t-1" },
        { body: {}, messageId: "no-session" },
      ]),
    ).rejects.toThrow(/no-session needs a session id/);
    await expect(
      queue.schedule({ body: {}, messageId: "long", sessionId: "x".repeat(129) }, new Date()),
    ).rejects.toThrow(/long needs a session id of 1 to 128 characters/);
    expect(fake.sentBatches).toEqual([]);
    expect(fake.scheduled).toEqual([]);
  });

  it("sends nothing for an empty list", async () => {
    const fake = new FakeSender();
    await new ServiceBusQueue(fake.asSender()).enqueue([]);
    expect(fake.sentBatches).toEqual([]);
  });
});
