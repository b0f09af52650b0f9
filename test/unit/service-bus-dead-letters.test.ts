import type { ServiceBusMessage, ServiceBusReceivedMessage } from "@azure/service-bus";

import {
  type DeadLetterReceiver,
  replayMessage,
  type ReplaySender,
  ServiceBusDeadLetters,
} from "../../shared/dead-letters/service-bus-dead-letters";

/**
 * A fake of the SDK's receiver on `<queue>/$deadletterqueue` and of the queue's sender: peek
 * reads on from a cursor, receive locks what is not settled, abandon puts a message back,
 * complete removes it. The seam is the SDK boundary, nothing of ours.
 */
class FakeDeadLetterQueue {
  readonly messages: ServiceBusReceivedMessage[];
  readonly sent: ServiceBusMessage[] = [];
  readonly completed: string[] = [];
  abandoned = 0;
  readonly #locked = new Set<ServiceBusReceivedMessage>();
  peekCalls = 0;
  failSends = false;
  #cursor = 0;

  constructor(count: number, extra: Partial<ServiceBusReceivedMessage> = {}) {
    this.messages = Array.from({ length: count }, (_, i) =>
      message(i + 1, { ...extra, messageId: `m-${i + 1}` }),
    );
  }

  receiver(): DeadLetterReceiver {
    return {
      peekMessages: (max: number) => {
        this.peekCalls += 1;
        const page = this.messages.slice(this.#cursor, this.#cursor + Math.min(max, 2));
        this.#cursor += page.length;
        return Promise.resolve(page);
      },
      receiveMessages: (max: number) => {
        const free = this.messages.filter((m) => !this.#locked.has(m)).slice(0, max);
        for (const m of free) this.#locked.add(m);
        return Promise.resolve(free);
      },
      completeMessage: (m: ServiceBusReceivedMessage) => {
        this.completed.push(String(m.sequenceNumber));
        this.#locked.delete(m);
        this.messages.splice(this.messages.indexOf(m), 1);
        return Promise.resolve();
      },
      abandonMessage: (m: ServiceBusReceivedMessage) => {
        this.abandoned += 1;
        this.#locked.delete(m);
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
    };
  }

  sender(): ReplaySender {
    return {
      sendMessages: (m: ServiceBusMessage | ServiceBusMessage[]) => {
        if (this.failSends) return Promise.reject(new Error("send refused"));
        this.sent.push(...[m].flat());
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
    };
  }

  store(): ServiceBusDeadLetters {
    return new ServiceBusDeadLetters("ns/herald-work/$deadletterqueue", this.receiver(), () =>
      this.sender(),
    );
  }
}

function message(
  sequence: number,
  extra: Partial<ServiceBusReceivedMessage> = {},
): ServiceBusReceivedMessage {
  return {
    // The SDK's sequence numbers are Long; ours only need toString().
    sequenceNumber: { toString: () => String(sequence) },
    body: { requestId: `r-${sequence}` },
    contentType: "application/json",
    correlationId: `c-${sequence}`,
    applicationProperties: {
      heraldKind: "delivery",
      DeadLetterReason: "MaxDeliveryCountExceeded",
      DeadLetterErrorDescription: "6 deliveries",
    },
    deadLetterReason: "MaxDeliveryCountExceeded",
    deadLetterErrorDescription: "6 deliveries",
    deliveryCount: 6,
    enqueuedTimeUtc: new Date("2026-12-01T10:00:00Z"),
    ...extra,
  } as unknown as ServiceBusReceivedMessage;
}

describe("ServiceBusDeadLetters", () => {
  describe("list", () => {
    it("peeks page after page, with the sequence number as id and the reason the broker gave", async () => {
      const fake = new FakeDeadLetterQueue(5, { sessionId: "tenant-a" });
      const letters = await fake.store().list(100);
      expect(letters.map((l) => l.id)).toEqual(["1", "2", "3", "4", "5"]);
      expect(fake.peekCalls).toBe(4); // pages of 2, then an empty one
      expect(letters[0]).toMatchObject({
        messageId: "m-1",
        sessionId: "tenant-a",
        reason: "MaxDeliveryCountExceeded",
        description: "6 deliveries",
        applicationProperties: { heraldKind: "delivery" },
      });
      expect(fake.completed).toEqual([]);
    });

    it("stops at the maximum asked for", async () => {
      const letters = await new FakeDeadLetterQueue(5).store().list(3);
      expect(letters).toHaveLength(3);
    });
  });

  describe("replay", () => {
    it("sends a copy with the session id back to the work queue, then completes only that dead letter", async () => {
      const fake = new FakeDeadLetterQueue(3, { sessionId: "tenant-a" });
      const replayed = await fake.store().replay({ kind: "ids", ids: ["2"] });
      expect(replayed.map((l) => l.id)).toEqual(["2"]);
      expect(fake.sent).toEqual([
        {
          body: { requestId: "r-2" },
          messageId: "m-2",
          contentType: "application/json",
          correlationId: "c-2",
          sessionId: "tenant-a",
          applicationProperties: { heraldKind: "delivery" },
        },
      ]);
      expect(fake.completed).toEqual(["2"]);
      expect(fake.messages.map((m) => String(m.sequenceNumber))).toEqual(["1", "3"]);
    });

    it("replays every dead letter with --all", async () => {
      const fake = new FakeDeadLetterQueue(4);
      const replayed = await fake.store().replay({ kind: "all" });
      expect(replayed).toHaveLength(4);
      expect(fake.sent.map((m) => m.messageId)).toEqual(["m-1", "m-2", "m-3", "m-4"]);
      expect(fake.messages).toEqual([]);
    });

    it("stops, without replaying anything, when the ids asked for are not in the queue", async () => {
      const fake = new FakeDeadLetterQueue(2);
      const replayed = await fake.store().replay({ kind: "ids", ids: ["99"] });
      expect(replayed).toEqual([]);
      expect(fake.sent).toEqual([]);
      expect(fake.completed).toEqual([]);
      expect(fake.abandoned).toBe(2); // held while looking further, then given back
    });

    it("leaves the dead letter in place when sending the copy fails", async () => {
      const fake = new FakeDeadLetterQueue(1);
      fake.failSends = true;
      await expect(fake.store().replay({ kind: "all" })).rejects.toThrow("send refused");
      expect(fake.completed).toEqual([]);
      expect(fake.messages).toHaveLength(1);
    });
  });

  it("finds an id behind more than one receive batch of other dead letters", async () => {
    const fake = new FakeDeadLetterQueue(120);
    const replayed = await fake.store().replay({ kind: "ids", ids: ["117"] });
    expect(replayed.map((l) => l.id)).toEqual(["117"]);
    expect(fake.messages).toHaveLength(119);
    expect(fake.abandoned).toBe(119); // every other message it received, given back at the end
  });

  describe("purge", () => {
    it("completes the selected dead letters without sending anything", async () => {
      const fake = new FakeDeadLetterQueue(3);
      const purged = await fake.store().purge({ kind: "ids", ids: ["1", "3"] });
      expect(purged.map((l) => l.id)).toEqual(["1", "3"]);
      expect(fake.sent).toEqual([]);
      expect(fake.messages.map((m) => String(m.sequenceNumber))).toEqual(["2"]);
    });
  });
});

describe("replayMessage", () => {
  it("gives the copy a new message id when asked, so duplicate detection cannot drop it", () => {
    const copy = replayMessage(
      message(7, { messageId: "m-7" }),
      { newMessageId: true },
      () => "new-id",
    );
    expect(copy.messageId).toBe("new-id");
    expect(copy.applicationProperties).toEqual({ heraldKind: "delivery" });
  });
});
