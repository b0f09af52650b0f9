import { type ChildProcess, fork } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { InvocationContext } from "@azure/functions";
import { buildSync } from "esbuild";

import { DuplicateDetector } from "../../shared/queue/duplicate-detection";
import type { QueueDrainer } from "../../shared/queue/local-queue";
import { LocalSessionQueue, MAX_SESSION_ID_LENGTH } from "../../shared/queue/local-session-queue";
import type { ConsumerEvent, ConsumerSettings } from "./local-session-consumer";

/** Polls until `check` returns a value, for at most `timeoutMs` (a guard, not an assertion). */
async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

function events(logFile: string): ConsumerEvent[] {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as ConsumerEvent);
}

function silent(): void {
  // The drain loop's lines are not what these tests look at.
}

describe("LocalSessionQueue", () => {
  let root: string;
  let consumerScript: string;
  let run = 0;
  let directory: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "herald-session-queue-"));
    // Real other processes using the same class: bundled once, run with plain node.
    consumerScript = join(root, "consumer.js");
    buildSync({
      entryPoints: [join(__dirname, "local-session-consumer.ts")],
      bundle: true,
      platform: "node",
      target: "node22",
      external: ["@azure/functions-core"],
      outfile: consumerScript,
      logLevel: "silent",
    });
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  beforeEach(() => {
    run += 1;
    directory = join(root, `run-${run}`);
  });

  // A failed assertion must not leave a drain loop or a child process running.
  const drainers: QueueDrainer[] = [];
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((done) => child.once("exit", done));
        child.kill("SIGKILL");
        await exited;
      }
    }
    await Promise.all(drainers.splice(0).map((d) => d.stop(1000)));
  });

  function queue(options: Partial<ConstructorParameters<typeof LocalSessionQueue>[0]> = {}) {
    return new LocalSessionQueue({ directory, lockDurationMs: 5_000, ...options });
  }

  /** Starts a consumer process; resolves once its drain loop runs. */
  async function consumer(
    settings: Omit<ConsumerSettings, "directory" | "logFile">,
    logFile: string,
  ): Promise<ChildProcess> {
    const stderr = openSync(join(root, `run-${run}-${settings.consumer}.stderr.log`), "a");
    const child = fork(consumerScript, [], {
      env: {
        ...process.env,
        HERALD_SESSION_CONSUMER: JSON.stringify({ ...settings, directory, logFile }),
      },
      stdio: ["ignore", "ignore", stderr, "ipc"],
    });
    closeSync(stderr);
    children.push(child);
    await new Promise<void>((done, fail) => {
      child.once("error", fail);
      child.once("exit", (code) => fail(new Error(`consumer exited early (${code})`)));
      child.on("message", (message) => {
        if (message === "ready") done();
      });
    });
    return child;
  }

  async function stopConsumer(child: ChildProcess): Promise<void> {
    const exited = new Promise((done) => child.once("exit", done));
    child.send("stop");
    await exited;
  }

  describe("draining", () => {
    it("handles one session's messages in order, one at a time, with maxConcurrentCallsPerSession 1", async () => {
      const work = queue();
      await work.enqueue(
        Array.from({ length: 30 }, (_, n) => ({ body: { n }, sessionId: "tenant-a" })),
      );
      const seen: number[] = [];
      let running = 0;
      let mostAtOnce = 0;
      drainers.push(
        work.startDraining(
          async (body) => {
            running += 1;
            mostAtOnce = Math.max(mostAtOnce, running);
            await new Promise((done) => setTimeout(done, 2));
            seen.push((body as { n: number }).n);
            running -= 1;
          },
          { functionName: "work", maxConcurrentCallsPerSession: 1, logHandler: silent },
        ),
      );

      await eventually(() => (seen.length === 30 ? true : undefined));

      expect(seen).toEqual(Array.from({ length: 30 }, (_, n) => n));
      expect(mostAtOnce).toBe(1);
    });

    it("passes the session id and the Service Bus trigger metadata to the handler", async () => {
      const work = queue();
      await work.enqueue([
        { body: { hello: 1 }, sessionId: "tenant-b", messageId: "m-1", correlationId: "c-1" },
      ]);
      let context: InvocationContext | undefined;
      drainers.push(
        work.startDraining(
          (_body, invocation) => {
            context = invocation;
          },
          { functionName: "work", logHandler: silent },
        ),
      );

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
      await work.schedule({ body: { later: true }, sessionId: "tenant-c" }, at);
      const before = await work.counts();
      let handledAt: number | undefined;
      drainers.push(
        work.startDraining(
          () => {
            handledAt = Date.now();
          },
          { functionName: "work", pollIntervalMs: 200, logHandler: silent },
        ),
      );

      const handled = await eventually(() => handledAt);

      expect(before).toMatchObject({ active: 0, scheduled: 1, sessions: 1 });
      expect(handled).toBeGreaterThanOrEqual(at.getTime());
    });

    it("releases a session that has only scheduled messages, so another consumer takes it when they come due", async () => {
      const work = queue();
      const handledBy = new Map<string, string>();
      let unblock: () => void = () => undefined;
      const blocked = new Promise<void>((done) => (unblock = done));
      const drain = (name: string) =>
        work.startDraining(
          async (_body, context) => {
            const id = String(context.triggerMetadata?.messageId);
            handledBy.set(id, name);
            // Keeps the first consumer's only session slot busy with another session.
            if (id === "other") await blocked;
          },
          {
            functionName: "work",
            maxConcurrentSessions: 1,
            sessionIdleTimeoutMs: 200,
            pollIntervalMs: 100,
            logHandler: silent,
          },
        );
      drainers.push(drain("first"));
      const due = new Date(Date.now() + 4_000);
      await work.enqueue([{ body: {}, sessionId: "tenant-s", messageId: "now" }]);
      await work.schedule({ body: {}, sessionId: "tenant-s", messageId: "later" }, due);
      await eventually(() => handledBy.get("now"));
      await work.enqueue([{ body: {}, sessionId: "tenant-t", messageId: "other" }]);
      // With one session slot, taking tenant-t means tenant-s was released.
      await eventually(() => handledBy.get("other"));
      drainers.push(drain("second"));

      const laterBy = await eventually(() => handledBy.get("later"));
      unblock();

      expect(laterBy).toBe("second");
    });

    it("dead-letters a message after maxDeliveryCount deliveries, with the reason", async () => {
      const work = queue({ maxDeliveryCount: 3 });
      await work.enqueue([{ body: {}, sessionId: "tenant-d", messageId: "poison" }]);
      const deliveries: number[] = [];
      drainers.push(
        work.startDraining(
          (_body, context) => {
            deliveries.push(Number(context.triggerMetadata?.deliveryCount));
            throw new Error("boom");
          },
          { functionName: "work", retryDelayMs: 10, logHandler: silent },
        ),
      );

      const [dead] = await eventually(async () => {
        const letters = await work.deadLetters();
        return letters.length > 0 ? letters : undefined;
      });

      expect(deliveries).toEqual([1, 2, 3]);
      expect(dead).toMatchObject({
        messageId: "poison",
        sessionId: "tenant-d",
        deliveryCount: 3,
        deadLetterReason: "MaxDeliveryCountExceeded",
      });
      expect(dead!.deadLetterErrorDescription).toContain("boom");
    });
  });

  describe("sending", () => {
    it("refuses a message without a sessionId", async () => {
      const work = queue();

      await expect(work.enqueue([{ body: {} }])).rejects.toThrow(/sessionId/);
      expect(await work.counts()).toMatchObject({ active: 0, sessions: 0 });
    });

    it("refuses a session id longer than 128 characters, as Service Bus does", async () => {
      const work = queue();
      const message = { body: {}, sessionId: "t".repeat(MAX_SESSION_ID_LENGTH + 1) };

      await expect(work.schedule(message, new Date())).rejects.toThrow(/at most 128/);
    });

    it("drops a second message with the same id within the duplicate detection window", async () => {
      const work = queue();
      await work.enqueue([{ body: { copy: 1 }, sessionId: "tenant-e", messageId: "same" }]);
      await work.enqueue([{ body: { copy: 2 }, sessionId: "tenant-e", messageId: "same" }]);

      expect(await work.counts()).toMatchObject({ active: 1 });
    });

    it("accepts the same message id again once the window has passed", async () => {
      const work = queue({ duplicateDetectionWindowMs: 200 });
      await work.enqueue([{ body: { copy: 1 }, sessionId: "tenant-f", messageId: "again" }]);
      await new Promise((done) => setTimeout(done, 400));
      await work.enqueue([{ body: { copy: 2 }, sessionId: "tenant-f", messageId: "again" }]);

      expect(await work.counts()).toMatchObject({ active: 2 });
    });

    it("keeps one copy when two processes' worth of senders send one id at once", async () => {
      const first = queue();
      const second = queue();
      const message = { body: {}, sessionId: "tenant-g", messageId: "race" };
      await Promise.all([
        ...Array.from({ length: 10 }, () => first.enqueue([message])),
        ...Array.from({ length: 10 }, () => second.enqueue([message])),
      ]);

      expect(await first.counts()).toMatchObject({ active: 1 });
    });
  });

  describe("consumers in separate processes", () => {
    it("never lets two consumers hold one session at once, and both make progress", async () => {
      const logFile = join(directory, "..", `run-${run}-events.log`);
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
        await work.enqueue(
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
          () => events(logFile).filter((e) => e.event === "end").length >= expected || undefined,
          60_000,
        );
        // Long enough for the holders to release, so the next wave is taken afresh.
        await new Promise((done) => setTimeout(done, 300));
      }
      await stopConsumer(a);
      await stopConsumer(b);

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

    it("gives a SIGKILLed consumer's session to another after the lock duration, and delivers its message again", async () => {
      const logFile = join(directory, "..", `run-${run}-events.log`);
      const common = {
        lockDurationMs: 1_500,
        maxConcurrentSessions: 8,
        sessionIdleTimeoutMs: 5_000,
      };
      const doomed = await consumer({ ...common, consumer: "doomed", handle: "hang" }, logFile);
      const started = new Promise<void>((done) =>
        doomed.on("message", (m) => m !== "ready" && done()),
      );
      const work = queue({ lockDurationMs: 1_500 });
      await work.enqueue([{ body: {}, sessionId: "tenant-k", messageId: "in-flight" }]);
      await started;
      const exited = new Promise((done) => doomed.once("exit", done));
      doomed.kill("SIGKILL");
      await exited;

      await consumer({ ...common, consumer: "survivor", handle: 1 }, logFile);
      const redelivered = await eventually(() =>
        events(logFile).find((e) => e.consumer === "survivor" && e.event === "end"),
      );

      expect(events(logFile).filter((e) => e.event === "start")).toEqual([
        expect.objectContaining({ consumer: "doomed", messageId: "in-flight", deliveryCount: 1 }),
        expect.objectContaining({ consumer: "survivor", messageId: "in-flight", deliveryCount: 2 }),
      ]);
      expect(redelivered).toMatchObject({ sessionId: "tenant-k", deliveryCount: 2 });
    }, 60_000);
  });

  describe("DuplicateDetector", () => {
    it("sweeps the entries older than the window and keeps the recent ones", async () => {
      const detector = new DuplicateDetector({
        directory: join(directory, "dedupe"),
        windowMs: 300,
      });
      await detector.accept("old");
      await new Promise((done) => setTimeout(done, 600));
      const now = Date.now();
      await detector.accept("recent", now);

      await detector.sweep(now);

      // Entries are named by the id's hash: one left, the recent one.
      expect(readdirSync(detector.directory).filter((n) => /^[0-9a-f]{64}$/.test(n))).toHaveLength(
        1,
      );
      expect(await detector.accept("recent", now + 100)).toBe(false);
    });
  });
});
