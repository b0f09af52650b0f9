import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import type { InvocationContext } from "@azure/functions";
import { buildSync } from "esbuild";

import { LocalQueue, type QueueDrainer } from "../../shared/queue/local-queue";

const PROJECT_ROOT = resolve(__dirname, "../..");

/** Polls until `check` returns a value, for at most `timeoutMs` (a guard, not an assertion). */
async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("LocalQueue", () => {
  let root: string;
  let childScript: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "herald-local-queue-"));
    // A real second process using the same class: bundled once, run with plain node.
    childScript = join(root, "child.js");
    const bundle = buildSync({
      stdin: {
        contents: `
          import { LocalQueue } from "./shared/queue/local-queue";
          const [mode, directory, arg] = process.argv.slice(2);
          const queue = new LocalQueue({ directory, lockDurationMs: 3000 });
          (async () => {
            if (mode === "enqueue") {
              const n = Number(arg);
              for (let i = 0; i < n; i += 10) {
                await queue.enqueue(Array.from({ length: Math.min(10, n - i) }, (_, j) => ({
                  body: { from: process.pid, n: i + j },
                  messageId: process.pid + "-" + (i + j),
                })));
              }
              process.stdout.write("done\\n");
            } else {
              const [message] = await queue.receive(1);
              process.stdout.write(JSON.stringify({ messageId: message?.messageId }) + "\\n");
              setInterval(() => undefined, 1000); // hold the lock until killed
            }
          })();
        `,
        resolveDir: PROJECT_ROOT,
        loader: "ts",
      },
      bundle: true,
      platform: "node",
      target: "node22",
      external: ["@azure/functions-core"],
      write: false,
      logLevel: "silent",
    });
    writeFileSync(childScript, bundle.outputFiles[0]!.contents);
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  // A failed assertion must not leave a drain loop or a child process running.
  const drainers: QueueDrainer[] = [];
  const children: ChildProcess[] = [];
  afterEach(async () => {
    children.splice(0).forEach((c) => c.kill("SIGKILL"));
    await Promise.all(drainers.splice(0).map((d) => d.stop(1000)));
  });

  function track(drainer: QueueDrainer): QueueDrainer {
    drainers.push(drainer);
    return drainer;
  }

  function freshQueue(options: { lockDurationMs?: number; maxDeliveryCount?: number } = {}) {
    return new LocalQueue({ directory: mkdtempSync(join(root, "q-")), ...options });
  }

  function runChild(args: string[]): { child: ChildProcess; firstLine: Promise<string> } {
    const child = spawn(process.execPath, [childScript, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    const firstLine = new Promise<string>((done, fail) => {
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const end = out.indexOf("\n");
        if (end >= 0) done(out.slice(0, end));
      });
      child.on("exit", (code) => fail(new Error(`child exited with ${code} before answering`)));
    });
    return { child, firstLine };
  }

  it("keeps messages on disk: a new instance on the same folder receives them with their properties", async () => {
    const first = freshQueue();
    await first.enqueue([
      {
        body: { hello: "world" },
        messageId: "req-1",
        correlationId: "corr-1",
        applicationProperties: { heraldKind: "delivery", attempt: 2 },
      },
    ]);
    const second = new LocalQueue({ directory: join(first.path, "..") });
    const [message, ...rest] = await second.receive(10);
    expect(rest).toHaveLength(0);
    expect(message).toMatchObject({
      messageId: "req-1",
      correlationId: "corr-1",
      body: { hello: "world" },
      applicationProperties: { heraldKind: "delivery", attempt: 2 },
      deliveryCount: 1,
    });
    expect(message!.enqueuedTimeUtc.getTime()).toBeLessThanOrEqual(Date.now());
    await second.complete(message!);
    await expect(second.counts()).resolves.toEqual({
      active: 0,
      scheduled: 0,
      locked: 0,
      deadLettered: 0,
    });
  });

  it("calls the handler as the Functions host does, with the Service Bus trigger metadata", async () => {
    const queue = freshQueue();
    await queue.enqueue([
      {
        body: { id: "n-1" },
        messageId: "n-1",
        correlationId: "c-9",
        applicationProperties: { heraldKind: "roster-sync" },
      },
    ]);
    const seen: { body: unknown; context: InvocationContext }[] = [];
    const drainer = queue.startDraining(
      (body, context) => {
        seen.push({ body, context });
      },
      { functionName: "notifications", logHandler: () => undefined },
    );
    track(drainer);
    await eventually(async () =>
      (await queue.counts()).locked === 0 && seen.length ? 1 : undefined,
    );
    await drainer.stop();
    expect(seen).toHaveLength(1);
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
    await expect(queue.counts()).resolves.toMatchObject({ active: 0, locked: 0 });
  });

  it("does not deliver a scheduled message before its time", async () => {
    const queue = freshQueue();
    const at = new Date(Date.now() + 700);
    await queue.schedule({ body: "later", messageId: "s-1" }, at);
    await expect(queue.receive(5)).resolves.toEqual([]);
    await expect(queue.counts()).resolves.toMatchObject({ scheduled: 1, active: 0 });
    const deliveredAt: number[] = [];
    const drainer = queue.startDraining(
      () => {
        deliveredAt.push(Date.now());
      },
      { functionName: "notifications", pollIntervalMs: 50, logHandler: () => undefined },
    );
    track(drainer);
    await eventually(() => deliveredAt[0]);
    await drainer.stop();
    expect(deliveredAt).toHaveLength(1);
    expect(deliveredAt[0]!).toBeGreaterThanOrEqual(at.getTime());
  });

  it("counts every delivery, retries after a throw and completes on success", async () => {
    const queue = freshQueue();
    await queue.enqueue([{ body: "flaky", messageId: "f-1" }]);
    const counts: unknown[] = [];
    const drainer = queue.startDraining(
      (_body, context) => {
        counts.push(context.triggerMetadata?.deliveryCount);
        if (counts.length < 3) throw new Error("transient");
      },
      { functionName: "notifications", retryDelayMs: 10, logHandler: () => undefined },
    );
    track(drainer);
    await eventually(() => (counts.length >= 3 ? true : undefined));
    await drainer.stop();
    expect(counts).toEqual([1, 2, 3]);
    await expect(queue.counts()).resolves.toEqual({
      active: 0,
      scheduled: 0,
      locked: 0,
      deadLettered: 0,
    });
  });

  it("dead-letters a message after the maximum number of deliveries, keeping the last error", async () => {
    const queue = freshQueue({ maxDeliveryCount: 4 });
    await queue.enqueue([{ body: { bad: true }, messageId: "d-1", correlationId: "c-d" }]);
    const counts: unknown[] = [];
    const logged: string[] = [];
    const drainer = queue.startDraining(
      (_body, context) => {
        counts.push(context.triggerMetadata?.deliveryCount);
        throw new Error("poison");
      },
      {
        functionName: "notifications",
        retryDelayMs: 5,
        logHandler: (level, ...args) => logged.push(`${level} ${args.join(" ")}`),
      },
    );
    track(drainer);
    const [dead] = await eventually(async () => {
      const letters = await queue.deadLetters();
      return letters.length > 0 ? letters : undefined;
    });
    await drainer.stop();
    expect(counts).toEqual([1, 2, 3, 4]);
    expect(dead).toMatchObject({
      messageId: "d-1",
      correlationId: "c-d",
      body: { bad: true },
      deliveryCount: 4,
      deadLetterReason: "MaxDeliveryCountExceeded",
    });
    expect(dead!.deadLetterErrorDescription).toContain("poison");
    expect(logged.some((l) => l.startsWith("error") && l.includes("dead-lettered"))).toBe(true);
    await expect(queue.counts()).resolves.toEqual({
      active: 0,
      scheduled: 0,
      locked: 0,
      deadLettered: 1,
    });
  });

  it("gives a message back when the process holding its lock is killed", async () => {
    const queue = freshQueue();
    await queue.enqueue([{ body: "survives", messageId: "k-1" }]);
    const { child, firstLine } = runChild(["hold", join(queue.path, "..")]);
    try {
      expect(JSON.parse(await firstLine)).toEqual({ messageId: "k-1" });
      child.kill("SIGKILL");
      // Still locked by the dead consumer until its lock expires: not delivered twice at once.
      await expect(queue.receive(1)).resolves.toEqual([]);
      const [again] = await eventually(async () => {
        const got = await queue.receive(1);
        return got.length > 0 ? got : undefined;
      });
      expect(again).toMatchObject({ messageId: "k-1", body: "survives", deliveryCount: 2 });
      await queue.complete(again!);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("delivers once each message enqueued by several processes while two consumers drain", async () => {
    const queue = freshQueue();
    const other = new LocalQueue({ directory: join(queue.path, "..") });
    const seen: string[] = [];
    const handler = (_body: unknown, context: InvocationContext) => {
      seen.push(String(context.triggerMetadata?.messageId));
    };
    const options = {
      functionName: "notifications",
      maxConcurrentCalls: 4,
      logHandler: () => undefined,
    };
    const drainers = [
      queue.startDraining(handler, options),
      other.startDraining(handler, options),
    ].map(track);
    const producers = [0, 1, 2].map(() => runChild(["enqueue", join(queue.path, ".."), "40"]));
    try {
      await Promise.all(producers.map((p) => p.firstLine));
      await eventually(() => (seen.length >= 120 ? true : undefined), 15_000);
      await eventually(async () => ((await queue.counts()).locked === 0 ? true : undefined));
    } finally {
      await Promise.all(drainers.map((d) => d.stop()));
      producers.forEach((p) => p.child.kill("SIGKILL"));
    }
    expect(seen).toHaveLength(120);
    expect(new Set(seen).size).toBe(120);
    const pids = new Set(producers.map((p) => String(p.child.pid)));
    expect(new Set(seen.map((id) => id.split("-")[0]))).toEqual(pids);
  });

  it("waits for the messages in flight when stopped, and completes them", async () => {
    const queue = freshQueue();
    await queue.enqueue([{ body: 1 }, { body: 2 }]);
    let started = 0;
    let finished = 0;
    const drainer = queue.startDraining(
      async () => {
        started += 1;
        await new Promise((r) => setTimeout(r, 150));
        finished += 1;
      },
      { functionName: "notifications", logHandler: () => undefined },
    );
    track(drainer);
    await eventually(() => (started === 2 ? true : undefined));
    await drainer.stop();
    expect(finished).toBe(2);
    await expect(queue.counts()).resolves.toMatchObject({ active: 0, locked: 0 });
  });

  it("renews the lock of a message whose handler outlives the lock duration", async () => {
    const queue = freshQueue({ lockDurationMs: 600 });
    const rival = new LocalQueue({ directory: join(queue.path, ".."), lockDurationMs: 600 });
    await queue.enqueue([{ body: "slow", messageId: "slow-1" }]);
    const rivalSaw: string[] = [];
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    let deliveries = 0;
    const drainer = queue.startDraining(
      async () => {
        deliveries += 1;
        await done;
      },
      { functionName: "notifications", logHandler: () => undefined },
    );
    track(drainer);
    await eventually(() => (deliveries === 1 ? true : undefined));
    // Over two lock durations later, a second consumer still cannot take it.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      for (const m of await rival.receive(1)) rivalSaw.push(m.messageId);
      await new Promise((r) => setTimeout(r, 50));
    }
    release();
    await drainer.stop();
    expect(rivalSaw).toEqual([]);
    expect(deliveries).toBe(1);
    await expect(queue.counts()).resolves.toMatchObject({ active: 0, locked: 0 });
  });
});
