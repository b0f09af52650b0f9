import { randomUUID } from "node:crypto";

import { ServiceBusClient, type ServiceBusReceivedMessage } from "@azure/service-bus";

import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { ServiceBusQueue } from "../../shared/queue/service-bus-queue";

/**
 * Against a real namespace or the official Service Bus emulator, only when
 * SERVICEBUS_CONNECTION_STRING is set (queue: SERVICEBUS_QUEUE_NAME, default "notifications";
 * session-enabled work queue: SERVICEBUS_WORK_QUEUE_NAME, default "herald-work"; both should be
 * empty). Everywhere else this file is skipped, and says why.
 */
const connectionString = process.env.SERVICEBUS_CONNECTION_STRING;
const queueName = process.env.SERVICEBUS_QUEUE_NAME ?? "notifications";
const workQueueName = process.env.SERVICEBUS_WORK_QUEUE_NAME ?? "herald-work";
const describeWithServiceBus =
  connectionString !== undefined && connectionString !== "" ? describe : describe.skip;
if (connectionString === undefined || connectionString === "") {
  console.log(
    "ServiceBusQueue integration tests skipped: SERVICEBUS_CONNECTION_STRING is not set (point it at a namespace or the Service Bus emulator to run them).",
  );
}

describeWithServiceBus("ServiceBusQueue against Service Bus", () => {
  let client: ServiceBusClient;
  let queue: ServiceBusQueue;

  beforeAll(() => {
    client = new ServiceBusClient(connectionString!);
    queue = ServiceBusQueue.fromConnection(
      { kind: "connectionString", connectionString: connectionString! },
      queueName,
    );
  });
  afterAll(async () => {
    await queue.close();
    await client.close();
  });

  it("sends a batch whose messages arrive with their id, correlation id, properties and JSON body", async () => {
    const run = randomUUID();
    const messages = Array.from({ length: 3 }, (_, i) => ({
      body: { run, n: i },
      messageId: `${run}-${i}`,
      correlationId: `corr-${run}`,
      applicationProperties: { [WORK_KIND_PROPERTY]: "delivery", attempt: i + 1 },
    }));
    await queue.enqueue(messages);
    const receiver = client.createReceiver(queueName, { receiveMode: "receiveAndDelete" });
    try {
      const received = [];
      while (received.length < 3) {
        const batch = await receiver.receiveMessages(3, { maxWaitTimeInMs: 10_000 });
        if (batch.length === 0) break;
        received.push(...batch.filter((m) => (m.body as { run?: string }).run === run));
      }
      expect(received.map((m) => m.messageId).sort()).toEqual(
        messages.map((m) => m.messageId).sort(),
      );
      for (const m of received) {
        expect(m.correlationId).toBe(`corr-${run}`);
        expect(m.applicationProperties?.[WORK_KIND_PROPERTY]).toBe("delivery");
        expect(m.contentType).toBe("application/json");
      }
    } finally {
      await receiver.close();
    }
  });

  it("schedules a message that becomes visible no earlier than its time", async () => {
    const run = randomUUID();
    const at = new Date(Date.now() + 3_000);
    await queue.schedule({ body: { run }, messageId: run }, at);
    const receiver = client.createReceiver(queueName, { receiveMode: "receiveAndDelete" });
    try {
      let found: ServiceBusReceivedMessage | undefined;
      for (let i = 0; i < 5 && found === undefined; i++) {
        const batch = await receiver.receiveMessages(10, { maxWaitTimeInMs: 5_000 });
        found = batch.find((m) => m.messageId === run);
      }
      expect(found).toBeDefined();
      expect(found!.scheduledEnqueueTimeUtc?.getTime()).toBe(at.getTime());
      expect(found!.enqueuedTimeUtc!.getTime()).toBeGreaterThanOrEqual(at.getTime() - 1_000);
    } finally {
      await receiver.close();
    }
  });
});

describeWithServiceBus("ServiceBusQueue against a session-enabled Service Bus queue", () => {
  let client: ServiceBusClient;
  let queue: ServiceBusQueue;

  beforeAll(() => {
    client = new ServiceBusClient(connectionString!);
    queue = ServiceBusQueue.fromConnection(
      { kind: "connectionString", connectionString: connectionString! },
      workQueueName,
      { sessions: true },
    );
  });
  afterAll(async () => {
    await queue.close();
    await client.close();
  });

  it("puts each work item in its tenant's session, which one receiver holds at a time", async () => {
    const run = randomUUID();
    const [a, b] = [`tenant-a-${run}`, `tenant-b-${run}`];
    await queue.enqueue([
      { body: { run, n: 1 }, messageId: `${run}-1`, sessionId: a },
      { body: { run, n: 2 }, messageId: `${run}-2`, sessionId: b },
      { body: { run, n: 3 }, messageId: `${run}-3`, sessionId: a },
    ]);
    const first = await client.acceptSession(workQueueName, a, { receiveMode: "peekLock" });
    try {
      // While the first receiver holds session a, nobody else may accept it.
      await expect(
        client.acceptSession(workQueueName, a, { maxAutoLockRenewalDurationInMs: 0 }),
      ).rejects.toThrow();
      const received = await first.receiveMessages(2, { maxWaitTimeInMs: 10_000 });
      expect(received.map((m) => m.messageId)).toEqual([`${run}-1`, `${run}-3`]);
      for (const m of received) await first.completeMessage(m);
    } finally {
      await first.close();
    }
    const other = await client.acceptSession(workQueueName, b, { receiveMode: "receiveAndDelete" });
    try {
      const [only] = await other.receiveMessages(1, { maxWaitTimeInMs: 10_000 });
      expect(only?.sessionId).toBe(b);
    } finally {
      await other.close();
    }
  });
});
