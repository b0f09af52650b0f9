import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { InvocationContext } from "@azure/functions";

import { type QueueDrainer, startDraining } from "../../shared/local-host/queue-drain";
import { holderIsDead } from "../../shared/queue/local-broker";
import { LocalQueue, type LocalQueueOptions } from "../../shared/queue/local-queue";
import { MAX_SESSION_ID_LENGTH } from "../../shared/queue/queue-port";
import {
  brokerDatabase,
  bundleChild,
  ChildProcesses,
  eventually,
  linesOf,
} from "../support/local-broker";
import type { ConsumerEvent, ConsumerSettings } from "./local-session-consumer";

function events(logFile: string): ConsumerEvent[] {
  return linesOf(logFile).map((line) => JSON.parse(line) as ConsumerEvent);
}

function silent(): void {
  // The drain loop's lines are not what these tests look at.
}

describe("LocalQueue with sessions", () => {
  let root: string;
  let consumerScript: string;
  let run = 0;
  let directory: string;
  const children = new ChildProcesses();

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "herald-session-queue-"));
    consumerScript = bundleChild(join(__dirname, "local-session-consumer.ts"), root);
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  beforeEach(() => {
    run += 1;
    directory = join(root, `run-${run}`);
  });

  // A failed assertion must not leave a drain loop or a child process running.
  const drainers: QueueDrainer[] = [];
  afterEach(async () => {
    await children.killAll();
    await Promise.all(drainers.splice(0).map((d) => d.stop(1000)));
  });

  function queue(options: Partial<LocalQueueOptions> = {}) {
    return new LocalQueue({
      directory,
      queueName: "herald-work",
      sessions: true,
      lockDurationMs: 5_000,
      ...options,
    });
  }

  function drain(
    work: LocalQueue,
    handler: (body: unknown, context: InvocationContext) => unknown,
    options: Record<string, unknown> = {},
  ): void {
    drainers.push(
      startDraining(work, handler, {
        functionName: "work",
        logHandler: silent,
        ...options,
      }),
    );
  }

  /** Starts a consumer process; resolves once its drain loop runs. */
  async function consumer(
    settings: Omit<ConsumerSettings, "directory" | "logFile">,
    logFile: string,
  ): Promise<ChildProcess> {
    const env = {
      HERALD_SESSION_CONSUMER: JSON.stringify({ ...settings, directory, logFile }),
    };
    const stderrFile = join(root, `run-${run}-${settings.consumer}.stderr.log`);
    return (await children.start(consumerScript, env, { stderrFile })).child;
  }

  describe("draining", () => {
    it("handles one session's messages in order, one at a time, with maxConcurrentCallsPerSession 1", async () => {
      const work = queue();
      work.send(Array.from({ length: 30 }, (_, n) => ({ body: { n }, sessionId: "tenant-a" })));
      const seen: number[] = [];
      let running = 0;
      let mostAtOnce = 0;
      drain(
        work,
        async (body) => {
          running += 1;
          mostAtOnce = Math.max(mostAtOnce, running);
          await new Promise((done) => setTimeout(done, 2));
          seen.push((body as { n: number }).n);
          running -= 1;
        },
        { maxConcurrentCallsPerSession: 1 },
      );

      await eventually(() => seen.length === 30);

      expect(seen).toEqual(Array.from({ length: 30 }, (_, n) => n));
      expect(mostAtOnce).toBe(1);
    });

    it("passes the session id and the Service Bus trigger metadata to the handler", async () => {
      const work = queue();
      work.send([
        { body: { hello: 1 }, sessionId: "tenant-b", messageId: "m-1", correlationId: "c-1" },
      ]);
      let context: InvocationContext | undefined;
      drain(work, (_body, invocation) => {
        context = invocation;
      });

      const metadata = (await eventually(() => context)).triggerMetadata;

      expect(metadata).toMatchObject({
        sessionId: "tenant-b",
        messageId: "m-1",
        correlationId: "c-1",
        deliveryCount: 1,
      });
    });

    it("makes a scheduled message visible at its time, not before", async () => {
      const work = queue();
      const at = new Date(Date.now() + 1_500);
      work.send([{ body: { later: true }, sessionId: "tenant-c" }], at);
      const before = work.counts();
      let handledAt: number | undefined;
      drain(work, () => void (handledAt = Date.now()), { pollIntervalMs: 200 });

      const handled = await eventually(() => handledAt);

      expect(before).toMatchObject({ active: 0, scheduled: 1, sessions: 1 });
      expect(handled).toBeGreaterThanOrEqual(at.getTime());
    });

    it("releases a session that has only scheduled messages, so another consumer takes it when they come due", async () => {
      const work = queue();
      const handledBy = new Map<string, string>();
      let unblock: () => void = () => undefined;
      const blocked = new Promise<void>((done) => (unblock = done));
      const consumerNamed = (name: string) =>
        drain(
          work,
          async (_body, context) => {
            const id = String(context.triggerMetadata?.messageId);
            handledBy.set(id, name);
            // Keeps the first consumer's only session slot busy with another session.
            if (id === "other") await blocked;
          },
          { maxConcurrentSessions: 1, sessionIdleTimeoutMs: 200, pollIntervalMs: 100 },
        );
      consumerNamed("first");
      const due = new Date(Date.now() + 4_000);
      work.send([{ body: {}, sessionId: "tenant-s", messageId: "now" }]);
      work.send([{ body: {}, sessionId: "tenant-s", messageId: "later" }], due);
      await eventually(() => handledBy.get("now"));
      work.send([{ body: {}, sessionId: "tenant-t", messageId: "other" }]);
      // With one session slot, taking tenant-t means tenant-s was released.
      await eventually(() => handledBy.get("other"));
      consumerNamed("second");

      const laterBy = await eventually(() => handledBy.get("later"));
      unblock();

      expect(laterBy).toBe("second");
    });

    it("dead-letters a message after maxDeliveryCount deliveries, with the reason", async () => {
      const work = queue({ maxDeliveryCount: 3 });
      work.send([{ body: {}, sessionId: "tenant-d", messageId: "poison" }]);
      const deliveries: number[] = [];
      drain(
        work,
        (_body, context) => {
          deliveries.push(Number(context.triggerMetadata?.deliveryCount));
          throw new Error("boom");
        },
        { retryDelayMs: 10 },
      );

      const [dead] = await eventually(() => work.deadLetters().length > 0 && work.deadLetters());

      expect(deliveries).toEqual([1, 2, 3]);
      expect(dead).toMatchObject({
        messageId: "poison",
        sessionId: "tenant-d",
        deliveryCount: 3,
        reason: "MaxDeliveryCountExceeded",
      });
      expect(dead!.description).toContain("boom");
    });
  });

  describe("sending", () => {
    it("refuses a message without a sessionId", async () => {
      const work = queue();

      await expect(work.enqueue([{ body: {} }])).rejects.toThrow(/sessionId/);
      expect(work.counts()).toMatchObject({ active: 0, sessions: 0 });
    });

    it("refuses a session id longer than 128 characters, as Service Bus does", async () => {
      const work = queue();
      const message = { body: {}, sessionId: "t".repeat(MAX_SESSION_ID_LENGTH + 1) };

      await expect(work.schedule(message, new Date())).rejects.toThrow(/at most 128/);
    });

    it("drops a second message with the same id within the duplicate detection window", () => {
      const work = queue();
      work.send([{ body: { copy: 1 }, sessionId: "tenant-e", messageId: "same" }]);
      work.send([{ body: { copy: 2 }, sessionId: "tenant-e", messageId: "same" }]);

      expect(work.counts()).toMatchObject({ active: 1 });
    });
  });

  describe("session locks", () => {
    it("gives a session to one consumer at a time, and to another once released", () => {
      const work = queue();
      const rival = queue();
      work.send([{ body: {}, sessionId: "tenant-l" }]);

      const taken = work.acceptSession();
      expect(taken).toBe("tenant-l");
      expect(rival.acceptSession()).toBeUndefined();
      work.releaseSession("tenant-l");
      expect(rival.acceptSession()).toBe("tenant-l");
    });

    it("lets a consumer that finds every session held look without waiting for another's write", () => {
      const work = queue();
      const rival = queue();
      work.send([{ body: {}, sessionId: "tenant-w" }]);
      expect(work.acceptSession()).toBe("tenant-w");
      expect(rival.acceptSession()).toBeUndefined();
      // Another process is in the middle of a write (a settle, a send) while the rival looks:
      // with nothing to take, the look must neither wait for that write nor fail on the lock.
      const writer = brokerDatabase(directory);
      const started = Date.now();
      const looked = writer.transaction(() => {
        writer.run("UPDATE holders SET host = host");
        return rival.acceptSession();
      });
      writer.close();
      expect(looked).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(5_000); // the busy timeout is 10 s
    });

    it("wakes this process's drain loops of a queue for what gives them something to take, not for a receive, a complete, a renewal or another queue's send", () => {
      const watcher = queue();
      const other = queue();
      let wakes = 0;
      const unwatch = watcher.watch(() => (wakes += 1));
      try {
        // Counted as the writes commit (another process's loops are woken through the wake file
        // in the same step, see the next test); nothing here waits, so no echo of the file's
        // watch can land between a write and its check.
        other.send([{ body: {}, sessionId: "tenant-x" }]);
        expect(wakes).toBe(1);
        const session = other.acceptSession()!;
        const [first] = other.receiveFromSession(session, 1)!;
        other.complete(first!);
        other.renewSession(session);
        queue({ queueName: "notifications", sessions: false }).send([{ body: {} }]);
        expect(wakes).toBe(1);
        other.send([{ body: {}, sessionId: "tenant-x" }]);
        expect(wakes).toBe(2);
        const [second] = other.receiveFromSession(session, 1)!;
        other.abandon(second!);
        expect(wakes).toBe(3);
        other.releaseSession(session);
        expect(wakes).toBe(4);
      } finally {
        unwatch();
      }
    });

    it("makes a lock held by a process of another host wait for its expiry", () => {
      const work = queue();
      work.send([{ body: {}, sessionId: "tenant-h" }]);
      const db = brokerDatabase(directory);
      db.run("INSERT INTO holders VALUES ('elsewhere', 'another-host', 1, NULL)");
      db.run("INSERT INTO sessions VALUES ('herald-work', 'tenant-h', 'elsewhere', :until)", {
        until: Date.now() + 60_000,
      });

      expect(work.acceptSession()).toBeUndefined();
    });

    it("tells a dead holder from a live one, and a reused pid from its first life", () => {
      const started = (pid: number) => {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
          return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
        } catch {
          return null;
        }
      };

      expect(holderIsDead(process.pid, started(process.pid))).toBe(false);
      expect(holderIsDead(2 ** 22 + 1, null)).toBe(true); // above Linux's largest pid
      if (started(process.pid) !== null) expect(holderIsDead(process.pid, "0")).toBe(true); // same pid, another start time
    });
  });

  describe("consumers in separate processes", () => {
    it("wakes a consumer in another process for a send at once, not at its next poll", async () => {
      const logFile = join(root, `run-${run}-events.log`);
      const work = queue();
      // Polling once a minute: only the wake file can bring the message within the test's wait.
      await consumer(
        {
          consumer: "far",
          lockDurationMs: 5_000,
          maxConcurrentSessions: 8,
          sessionIdleTimeoutMs: 5_000,
          pollIntervalMs: 60_000,
          handle: 0,
        },
        logFile,
      );
      work.send([{ body: {}, sessionId: "tenant-far" }]);
      await eventually(() => events(logFile).some((e) => e.event === "end"), 20_000);
    });

    it("never lets two consumers hold one session at once, and both make progress", async () => {
      const logFile = join(root, `run-${run}-events.log`);
      const common = {
        lockDurationMs: 10_000,
        maxConcurrentSessions: 2,
        // Short, so sessions change hands between the waves below.
        sessionIdleTimeoutMs: 100,
        handle: 3,
      } as const;
      const a = await consumer({ ...common, consumer: "a" }, logFile);
      const b = await consumer({ ...common, consumer: "b" }, logFile);
      const work = queue();
      const sessions = ["t1", "t2", "t3", "t4"];
      const waves = 4;
      const perWave = 15;
      for (let wave = 0; wave < waves; wave += 1) {
        work.send(
          sessions.flatMap((sessionId) =>
            Array.from({ length: perWave }, (_, n) => ({
              body: {},
              sessionId,
              messageId: `${sessionId}-${wave}-${n}`,
            })),
          ),
        );
        const expected = (wave + 1) * perWave * sessions.length;
        await eventually(
          () => events(logFile).filter((e) => e.event === "end").length >= expected,
          60_000,
        );
        // Long enough for the holders to release, so the next wave is taken afresh.
        await new Promise((done) => setTimeout(done, 300));
      }
      await children.stop(a);
      await children.stop(b);

      /** `t1-2-7` → wave 2, message 7. */
      const order = (id: string): number => {
        const [, wave, n] = id.split("-");
        return Number(wave) * 1000 + Number(n);
      };
      const log = events(logFile);
      // Per session, the file's order must read start, end, start, end…, each end the start's.
      const overlaps: string[] = [];
      for (const sessionId of sessions) {
        let open: ConsumerEvent | undefined;
        for (const event of log.filter((e) => e.sessionId === sessionId)) {
          if (event.event === "start") {
            if (open)
              overlaps.push(
                `${open.consumer}/${open.messageId} & ${event.consumer}/${event.messageId}`,
              );
            open = event;
          } else {
            if (open?.messageId !== event.messageId) overlaps.push(`stray end ${event.messageId}`);
            open = undefined;
          }
        }
      }
      const handledBy = new Set(log.filter((e) => e.event === "end").map((e) => e.consumer));
      const ends = log.filter((e) => e.event === "end");
      const handled = new Set(ends.map((e) => e.messageId));
      // Enqueue order within each session, whoever held it: ids sort as they were sent.
      const outOfOrder = sessions.filter((sessionId) => {
        const ids = ends.filter((e) => e.sessionId === sessionId).map((e) => e.messageId);
        const sent = [...ids].sort((x, y) => order(x) - order(y));
        return ids.join() !== sent.join();
      });
      expect(overlaps).toEqual([]);
      expect([...handledBy].sort()).toEqual(["a", "b"]);
      expect(handled.size).toBe(waves * perWave * sessions.length);
      expect(outOfOrder).toEqual([]);
    }, 180_000);

    it("gives a SIGKILLed holder's session to another consumer long before its lock expires, and delivers its message again", async () => {
      const logFile = join(root, `run-${run}-events.log`);
      // A minute-long lock: a takeover that waited for the expiry would outlast this test.
      const common = {
        lockDurationMs: 60_000,
        maxConcurrentSessions: 8,
        sessionIdleTimeoutMs: 5_000,
      };
      const doomed = await consumer({ ...common, consumer: "doomed", handle: "hang" }, logFile);
      const started = new Promise<void>((done) =>
        doomed.on("message", (m) => m !== "ready" && done()),
      );
      const work = queue({ lockDurationMs: 60_000 });
      work.send([{ body: {}, sessionId: "tenant-k", messageId: "in-flight" }]);
      await started;
      const db = brokerDatabase(directory);
      const lock = db.get<{ owner: string; locked_until: number }>(
        "SELECT owner, locked_until FROM sessions WHERE session_id = 'tenant-k'",
      )!;
      await children.kill(doomed);

      await consumer({ ...common, consumer: "survivor", handle: 1 }, logFile);
      const redelivered = await eventually(() =>
        events(logFile).find((e) => e.consumer === "survivor" && e.event === "end"),
      );
      const takenAt = Date.now();

      expect(events(logFile).filter((e) => e.event === "start")).toEqual([
        expect.objectContaining({ consumer: "doomed", messageId: "in-flight", deliveryCount: 1 }),
        expect.objectContaining({ consumer: "survivor", messageId: "in-flight", deliveryCount: 2 }),
      ]);
      expect(redelivered).toMatchObject({ sessionId: "tenant-k", deliveryCount: 2 });
      // Taken over while the dead holder's lock still had most of its minute to run.
      expect(takenAt).toBeLessThan(lock.locked_until);
      expect(
        db.get("SELECT 1 FROM holders WHERE owner = :owner", { owner: lock.owner }),
      ).toBeUndefined();
    }, 60_000);
  });
});
