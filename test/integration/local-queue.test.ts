import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { InvocationContext } from "@azure/functions";

import { type QueueDrainer, startDraining } from "../../shared/local-host/queue-drain";
import { LocalQueue } from "../../shared/queue/local-queue";
import { bundleChild, ChildProcesses, eventually, linesOf } from "../support/local-broker";

describe("LocalQueue", () => {
  let root: string;
  let childScript: string;
  const children = new ChildProcesses();

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "herald-local-queue-"));
    childScript = bundleChild(join(__dirname, "local-queue-child.ts"), root);
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  // A failed assertion must not leave a drain loop or a child process running.
  const drainers: QueueDrainer[] = [];
  afterEach(async () => {
    await children.killAll();
    await Promise.all(drainers.splice(0).map((d) => d.stop(1000)));
  });

  function drain(queue: LocalQueue, handler: Parameters<typeof startDraining>[1], options = {}) {
    const drainer = startDraining(queue, handler, {
      functionName: "notifications",
      logHandler: () => undefined,
      ...options,
    });
    drainers.push(drainer);
    return drainer;
  }

  function freshQueue(options: { lockDurationMs?: number; maxDeliveryCount?: number } = {}) {
    return new LocalQueue({ directory: mkdtempSync(join(root, "q-")), ...options });
  }

  function child(settings: Record<string, unknown>, until?: (m: unknown) => boolean) {
    const env = { HERALD_QUEUE_CHILD: JSON.stringify(settings) };
    return children.start(childScript, env, until === undefined ? {} : { until });
  }

  const directoryOf = (queue: LocalQueue) => join(queue.path, "..");

  it("keeps messages in its database: a new instance on the same folder receives them with their properties", () => {
    const first = freshQueue();
    first.send([
      {
        body: { hello: "world" },
        messageId: "req-1",
        correlationId: "corr-1",
        applicationProperties: { heraldKind: "delivery", attempt: 2 },
      },
    ]);
    const second = new LocalQueue({ directory: directoryOf(first) });
    const [message, ...rest] = second.receive(10);
    expect(rest).toHaveLength(0);
    expect(message).toMatchObject({
      messageId: "req-1",
      correlationId: "corr-1",
      body: { hello: "world" },
      applicationProperties: { heraldKind: "delivery", attempt: 2 },
      deliveryCount: 1,
    });
    expect(message!.enqueuedTimeUtc.getTime()).toBeLessThanOrEqual(Date.now());
    second.complete(message!);
    expect(second.counts()).toMatchObject({ active: 0, scheduled: 0, locked: 0, deadLettered: 0 });
  });

  it("calls the handler as the Functions host does, with the Service Bus trigger metadata", async () => {
    const queue = freshQueue();
    queue.send([
      {
        body: { id: "n-1" },
        messageId: "n-1",
        correlationId: "c-9",
        applicationProperties: { heraldKind: "roster-sync" },
      },
    ]);
    const seen: { body: unknown; context: InvocationContext }[] = [];
    const drainer = drain(queue, (body, context) => {
      seen.push({ body, context });
    });
    await eventually(() => queue.counts().locked === 0 && seen.length === 1);
    await drainer.stop();
    const { body, context } = seen[0]!;
    expect(body).toEqual({ id: "n-1" });
    expect(context.functionName).toBe("notifications");
    expect(context.invocationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(context.triggerMetadata).toMatchObject({
      messageId: "n-1",
      correlationId: "c-9",
      deliveryCount: 1,
      applicationProperties: { heraldKind: "roster-sync" },
      userProperties: { heraldKind: "roster-sync" },
    });
    expect(new Date(context.triggerMetadata!.enqueuedTimeUtc as string).toISOString()).toBe(
      context.triggerMetadata!.enqueuedTimeUtc,
    );
    expect(queue.counts()).toMatchObject({ active: 0, locked: 0 });
  });

  it("does not deliver a scheduled message before its time", async () => {
    const queue = freshQueue();
    const at = new Date(Date.now() + 700);
    queue.send([{ body: "later", messageId: "s-1" }], at);
    expect(queue.receive(5)).toEqual([]);
    expect(queue.counts()).toMatchObject({ scheduled: 1, active: 0 });
    const deliveredAt: number[] = [];
    drain(queue, () => void deliveredAt.push(Date.now()), { pollIntervalMs: 50 });
    await eventually(() => deliveredAt[0]);
    expect(deliveredAt).toHaveLength(1);
    expect(deliveredAt[0]!).toBeGreaterThanOrEqual(at.getTime());
  });

  it("counts every delivery, retries after a throw and completes on success", async () => {
    const queue = freshQueue();
    queue.send([{ body: "flaky", messageId: "f-1" }]);
    const counts: unknown[] = [];
    const drainer = drain(
      queue,
      (_body, context) => {
        counts.push(context.triggerMetadata?.deliveryCount);
        if (counts.length < 3) throw new Error("transient");
      },
      { retryDelayMs: 10 },
    );
    await eventually(
      () => counts.length >= 3 && queue.counts().active + queue.counts().locked === 0,
    );
    await drainer.stop();
    expect(counts).toEqual([1, 2, 3]);
    expect(queue.counts()).toMatchObject({ active: 0, scheduled: 0, locked: 0, deadLettered: 0 });
  });

  it("dead-letters a message after the maximum number of deliveries, keeping the last error", async () => {
    const queue = freshQueue({ maxDeliveryCount: 4 });
    queue.send([{ body: { bad: true }, messageId: "d-1", correlationId: "c-d" }]);
    const counts: unknown[] = [];
    const logged: string[] = [];
    drain(
      queue,
      (_body, context) => {
        counts.push(context.triggerMetadata?.deliveryCount);
        throw new Error("poison");
      },
      {
        retryDelayMs: 5,
        logHandler: (level: string, ...args: unknown[]) =>
          logged.push(`${level} ${args.join(" ")}`),
      },
    );
    const [dead] = await eventually(() => queue.deadLetters().length > 0 && queue.deadLetters());
    expect(counts).toEqual([1, 2, 3, 4]);
    expect(dead).toMatchObject({
      messageId: "d-1",
      correlationId: "c-d",
      body: { bad: true },
      deliveryCount: 4,
      reason: "MaxDeliveryCountExceeded",
    });
    expect(dead!.description).toContain("poison");
    expect(logged.some((l) => l.startsWith("error") && l.includes("dead-lettered"))).toBe(true);
    expect(queue.counts()).toMatchObject({ active: 0, scheduled: 0, locked: 0, deadLettered: 1 });
  });

  it("gives a message back at once, its delivery counted, when the process holding its lock is killed", async () => {
    const queue = freshQueue({ lockDurationMs: 60_000 });
    queue.send([{ body: "survives", messageId: "k-1" }]);
    const holder = await child(
      { mode: "hold", directory: directoryOf(queue) },
      (m) => typeof m === "object",
    );
    expect(holder.first).toEqual({ messageId: "k-1" });
    // While the holder lives, its lock holds: not delivered twice at once.
    expect(queue.receive(1)).toEqual([]);
    await children.kill(holder.child);

    // A minute-long lock, yet taken back now: the broker knows the holder's process is gone.
    const [again] = await eventually(() => {
      const got = queue.receive(1);
      return got.length > 0 && got;
    }, 10_000);
    expect(again).toMatchObject({ messageId: "k-1", body: "survives", deliveryCount: 2 });
    queue.complete(again!);
  });

  it("delivers once each message enqueued by several processes while two consumers drain", async () => {
    const queue = freshQueue();
    const other = new LocalQueue({ directory: directoryOf(queue) });
    const seen: string[] = [];
    const handler = (_body: unknown, context: InvocationContext) => {
      seen.push(String(context.triggerMetadata?.messageId));
    };
    drain(queue, handler, { maxConcurrentCalls: 4 });
    drain(other, handler, { maxConcurrentCalls: 4 });
    const producers = await Promise.all(
      [0, 1, 2].map(() =>
        child({ mode: "send", directory: directoryOf(queue), count: 40 }, (m) => m === "sent"),
      ),
    );
    await eventually(() => seen.length >= 120 && queue.counts().locked === 0);
    expect(seen).toHaveLength(120);
    expect(new Set(seen).size).toBe(120);
    const pids = new Set(producers.map((p) => String(p.child.pid)));
    expect(new Set(seen.map((id) => id.split("-")[0]))).toEqual(pids);
  });

  it("hands each message to one of many receivers in four processes on one file, once per lock window", async () => {
    const queue = freshQueue({ lockDurationMs: 60_000 });
    queue.send(Array.from({ length: 400 }, (_, n) => ({ body: { n }, messageId: `m-${n}` })));
    const logFile = join(directoryOf(queue), "received.log");
    const receivers = await Promise.all(
      [0, 1, 2, 3].map(() => child({ mode: "receive", directory: directoryOf(queue), logFile })),
    );
    await eventually(() => linesOf(logFile).length >= 400 && queue.counts().active === 0);
    await Promise.all(receivers.map((r) => children.stop(r.child)));

    const lines = linesOf(logFile);
    const ids = lines.map((l) => l.split(" ")[0]);
    expect(lines).toHaveLength(400);
    expect(new Set(ids).size).toBe(400);
    expect(lines.every((l) => l.endsWith(" 1"))).toBe(true); // each one first delivery
    expect(queue.counts()).toMatchObject({ active: 0, locked: 0 });
  });

  it("waits for the messages in flight when stopped, and completes them", async () => {
    const queue = freshQueue();
    queue.send([{ body: 1 }, { body: 2 }]);
    let started = 0;
    let finished = 0;
    const drainer = drain(queue, async () => {
      started += 1;
      await new Promise((r) => setTimeout(r, 150));
      finished += 1;
    });
    await eventually(() => started === 2);
    await drainer.stop();
    expect(finished).toBe(2);
    expect(queue.counts()).toMatchObject({ active: 0, locked: 0 });
  });

  it("renews the lock of a message whose handler outlives the lock duration", async () => {
    const queue = freshQueue({ lockDurationMs: 600 });
    const rival = new LocalQueue({ directory: directoryOf(queue), lockDurationMs: 600 });
    queue.send([{ body: "slow", messageId: "slow-1" }]);
    const rivalSaw: string[] = [];
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    let deliveries = 0;
    const drainer = drain(queue, async () => {
      deliveries += 1;
      await done;
    });
    await eventually(() => deliveries === 1);
    // Over two lock durations later, a second consumer still cannot take it.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      for (const m of rival.receive(1)) rivalSaw.push(m.messageId);
      await new Promise((r) => setTimeout(r, 50));
    }
    release();
    await drainer.stop();
    expect(rivalSaw).toEqual([]);
    expect(deliveries).toBe(1);
    expect(queue.counts()).toMatchObject({ active: 0, locked: 0 });
  });

  describe("as Service Bus checks a send", () => {
    it("drops a second message with the same id within the duplicate detection window, on the intake queue too", () => {
      const intake = freshQueue();
      intake.send([{ body: { copy: 1 }, messageId: "req-7" }]);
      intake.send([{ body: { copy: 2 }, messageId: "req-7" }]);

      expect(intake.receive(10).map((m) => m.body)).toEqual([{ copy: 1 }]);
    });

    it("accepts the same message id again once the window has passed", async () => {
      const queue = new LocalQueue({
        directory: mkdtempSync(join(root, "q-")),
        duplicateDetectionWindowMs: 200,
      });
      queue.send([{ body: { copy: 1 }, messageId: "again" }]);
      await new Promise((done) => setTimeout(done, 300));
      queue.send([{ body: { copy: 2 }, messageId: "again" }]);

      expect(queue.counts()).toMatchObject({ active: 2 });
    });

    it("keeps one copy when two processes' worth of senders send one id at once", async () => {
      const first = freshQueue();
      const second = new LocalQueue({ directory: directoryOf(first) });
      const message = { body: {}, messageId: "race" };
      await Promise.all([
        ...Array.from({ length: 10 }, () => first.enqueue([message])),
        ...Array.from({ length: 10 }, () => second.enqueue([message])),
      ]);

      expect(first.counts()).toMatchObject({ active: 1 });
    });

    it("refuses a message over 256 KB, naming it and the limit, and sends none of its batch", async () => {
      const queue = freshQueue();
      const big = { body: "x".repeat(262_144), messageId: "big-1" };

      await expect(queue.enqueue([{ body: "small", messageId: "s" }, big])).rejects.toThrow(
        /Message big-1 is 2621\d\d bytes; Service Bus Standard takes 262144/,
      );
      expect(queue.counts()).toMatchObject({ active: 0 });
    });

    it("sends more than 256 KB of messages in batches that each fit, all of them", () => {
      const queue = freshQueue();
      const messages = Array.from({ length: 12 }, (_, n) => ({
        body: "y".repeat(60_000),
        messageId: `b-${n}`,
      }));
      queue.send(messages);

      expect(queue.counts()).toMatchObject({ active: 12 });
    });
  });
});
