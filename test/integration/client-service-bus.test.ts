import type { ServiceBusMessage, ServiceBusMessageBatch } from "@azure/service-bus";
import { ServiceBusClient } from "@azure/service-bus";

import { NotificationClient, NotificationSendError } from "../../shared";
import { requestMessageId } from "../../shared/client/transport";
import type { NotificationRequest } from "../../shared/notifications/schema";
import { type QueueSender, ServiceBusQueue } from "../../shared/queue/service-bus-queue";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/**
 * The broker faked at the adapter's own seam (`QueueSender`): batches hold `perBatch`
 * messages, as a real batch fills up at its byte limit.
 */
function fakeSender(perBatch: number, failOnSend?: number) {
  const sentBatches: ServiceBusMessage[][] = [];
  let sends = 0;
  const sender = {
    createMessageBatch: () => {
      const messages: ServiceBusMessage[] = [];
      const batch = {
        get count() {
          return messages.length;
        },
        maxSizeInBytes: 262_144,
        tryAddMessage: (m: ServiceBusMessage) => {
          if (messages.length >= perBatch) return false;
          messages.push(m);
          return true;
        },
        messages,
      };
      return Promise.resolve(batch as unknown as ServiceBusMessageBatch);
    },
    sendMessages: (batch: ServiceBusMessageBatch) => {
      sends += 1;
      if (failOnSend !== undefined && sends >= failOnSend) {
        return Promise.reject(new Error("ServiceBusError: the namespace is throttling"));
      }
      sentBatches.push((batch as unknown as { messages: ServiceBusMessage[] }).messages);
      return Promise.resolve();
    },
    scheduleMessages: () => Promise.reject(new Error("not used")),
    close: () => Promise.resolve(),
  } as unknown as QueueSender;
  return { sender, sentBatches };
}

function requests(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    id: `req-${i}`,
    tenantId: TENANT,
    recipients: [{ aadObjectId: "00000000-0000-4000-8000-00000000000" + (i % 10) }],
    message: { text: `Hello ${i}` },
    correlationId: `corr-${i}`,
  }));
}

describe("NotificationClient", () => {
  describe("send through the Service Bus adapter", () => {
    it("packs the requests into message batches with a message id made from the request's tenant, id and content", async () => {
      const { sender, sentBatches } = fakeSender(4);
      const client = new NotificationClient({ queue: new ServiceBusQueue(sender) });

      const ids = await client.sendMany(requests(10));

      expect(sentBatches.map((b) => b.length)).toEqual([4, 4, 2]);
      const messages = sentBatches.flat();
      expect(messages.map((m) => (m.body as { id: string }).id)).toEqual(ids);
      expect(messages[3]).toMatchObject({
        messageId: requestMessageId(messages[3]!.body as NotificationRequest),
        correlationId: "corr-3",
        contentType: "application/json",
        body: { schemaVersion: 1, id: "req-3", tenantId: TENANT, message: { text: "Hello 3" } },
      });
      expect(messages[3]!.applicationProperties).toBeUndefined();
    });

    it("says which requests were sent when the broker fails part-way", async () => {
      // 100 per batch; the 7th batch fails: the first enqueue call (500) went through.
      const { sender, sentBatches } = fakeSender(100, 7);
      const client = new NotificationClient({
        queue: new ServiceBusQueue(sender),
        description: "sb",
      });

      const error = await client.sendMany(requests(1200)).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(NotificationSendError);
      const failure = error as NotificationSendError;
      expect(failure.message).toContain("after 500 of 1200 requests");
      expect(failure.message).toContain("throttling");
      expect(failure.sentIds).toEqual(requests(500).map((r) => r.id));
      expect(failure.unsentIds).toHaveLength(700);
      expect(failure.unsentIds[0]).toBe("req-500");
      // The sent ones really went out; a retry of the unsent is safe (same ids).
      expect(
        sentBatches
          .flat()
          .slice(0, 500)
          .map((m) => (m.body as { id: string }).id),
      ).toEqual(failure.sentIds);
    });

    it("names a namespace without opening a connection until the first send", () => {
      const client = new NotificationClient("sb://contoso-herald.servicebus.windows.net/", {
        getToken: () => Promise.resolve(null),
      });
      expect(client.description).toBe(
        "Service Bus contoso-herald.servicebus.windows.net/notifications",
      );
      return client.close();
    });
  });

  const connectionString = process.env.SERVICEBUS_CONNECTION_STRING;
  (connectionString !== undefined ? describe : describe.skip)("against a real namespace", () => {
    it("sends a request that a receiver gets with a message id made from the request's tenant, id and content", async () => {
      const queueName = process.env.NotificationsQueueName ?? "notifications";
      const client = new NotificationClient(connectionString!, undefined, { queueName });
      const id = await client.send(requests(1)[0]!);
      await client.close();

      const sb = new ServiceBusClient(connectionString!);
      const receiver = sb.createReceiver(queueName, { receiveMode: "receiveAndDelete" });
      const got = await receiver.receiveMessages(50, { maxWaitTimeInMs: 5_000 });
      await sb.close();
      expect(got.map((m) => (m.body as { id: string }).id)).toContain(id);
    });
  });
});
