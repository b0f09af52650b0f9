import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { InvocationContext } from "@azure/functions";

import { LocalQueue } from "../../shared/queue/local-queue";

/** Polls until `check` holds, for at most `timeoutMs` (a guard, not an assertion). */
async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("LocalQueue with files it cannot read", () => {
  let root: string;
  const warnings: string[] = [];

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "herald-local-queue-hostile-"));
    warnings.length = 0;
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  function queue(options: { maxDeliveryCount?: number } = {}): LocalQueue {
    return new LocalQueue({ directory: root, onWarning: (l) => warnings.push(l), ...options });
  }

  /** Writes a file as a crash mid-write would leave it: a valid name, truncated content. */
  function plantTruncated(q: LocalQueue, deliveryCount: number): string {
    const name = `000000000000001.zzbad${deliveryCount}.${deliveryCount}.json`;
    writeFileSync(join(q.messagesFolder, name), '{"messageId":"torn","body":{"te');
    return name;
  }

  it("quarantines a truncated message file and keeps draining the rest", async () => {
    const q = queue();
    await q.ensureFolders();
    await q.enqueue([{ body: { n: 1 }, messageId: "before" }]);
    plantTruncated(q, 0);
    await q.enqueue([{ body: { n: 2 }, messageId: "after" }]);
    const handled: string[] = [];
    const drainer = q.startDraining(
      (_body: unknown, context: InvocationContext) => {
        handled.push(String(context.triggerMetadata?.messageId));
      },
      { functionName: "notifications", pollIntervalMs: 50, logHandler: () => undefined },
    );
    try {
      await eventually(() => handled.length === 2);
    } finally {
      await drainer.stop();
    }
    expect(handled.sort()).toEqual(["after", "before"]);
    expect(await q.quarantined()).toHaveLength(1);
    expect(warnings.join("\n")).toMatch(/quarantined unreadable message file/);
    await expect(q.counts()).resolves.toMatchObject({ active: 0, locked: 0 });
  });

  it("quarantines a truncated file that already used every delivery instead of failing every receive", async () => {
    const q = queue({ maxDeliveryCount: 3 });
    await q.ensureFolders();
    plantTruncated(q, 3);
    await q.enqueue([{ body: { n: 1 }, messageId: "ok" }]);
    const received = await q.receive(5);
    expect(received.map((m) => m.messageId)).toEqual(["ok"]);
    expect(await q.quarantined()).toHaveLength(1);
    expect(readdirSync(q.messagesFolder)).toEqual([]);
  });

  it("quarantines a file that is JSON but not a message", async () => {
    const q = queue();
    await q.ensureFolders();
    writeFileSync(join(q.messagesFolder, "000000000000001.zznull.0.json"), "null");
    await expect(q.receive(1)).resolves.toEqual([]);
    expect(await q.quarantined()).toHaveLength(1);
  });

  it("does not hand a message it holds back to its own next receive when the wall clock jumps", async () => {
    const q = new LocalQueue({ directory: root, lockDurationMs: 60_000 });
    await q.enqueue([{ body: { n: 1 }, messageId: "held" }]);
    const [held] = await q.receive(1);
    expect(held?.messageId).toBe("held");
    const realNow = Date.now;
    Date.now = () => realNow() + 10 * 60_000; // ten minutes forward
    try {
      await expect(q.receive(1)).resolves.toEqual([]);
    } finally {
      Date.now = realNow;
    }
    await q.complete(held!);
  });
});
