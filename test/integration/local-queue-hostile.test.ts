import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { InvocationContext } from "@azure/functions";

import { startDraining } from "../../shared/local-host/queue-drain";
import { LocalQueue } from "../../shared/queue/local-queue";
import { brokerDatabase, eventually } from "../support/local-broker";

describe("LocalQueue with rows it cannot read", () => {
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

  /** A row as a hostile (or broken) writer leaves it, straight into the broker's table. */
  function plant(row: { body?: string; properties?: string; deliveryCount?: number }): void {
    brokerDatabase(root).run(
      `INSERT INTO messages (queue, message_id, properties, body, enqueued_at, visible_at, delivery_count)
       VALUES ('notifications', 'planted', :properties, :body, 0, 0, :count)`,
      { properties: row.properties ?? "{}", body: row.body ?? "{}", count: row.deliveryCount ?? 0 },
    );
  }

  it("quarantines a row whose body is not JSON and keeps draining the rest", async () => {
    const q = queue();
    q.send([{ body: { n: 1 }, messageId: "before" }]);
    plant({ body: '{"messageId":"torn","body":{"te' });
    q.send([{ body: { n: 2 }, messageId: "after" }]);
    const handled: string[] = [];
    const drainer = startDraining(
      q,
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
    expect(q.counts()).toMatchObject({ active: 0, locked: 0, quarantined: 1 });
    expect(warnings.join("\n")).toMatch(/quarantined unreadable message \d+ \(/);
  });

  it("sets aside a torn row that already used every delivery instead of failing every receive or dead-letter read", () => {
    const q = queue({ maxDeliveryCount: 3 });
    plant({ body: '{"te', deliveryCount: 3 });
    q.send([{ body: { n: 1 }, messageId: "ok" }]);

    expect(q.receive(5).map((m) => m.messageId)).toEqual(["ok"]);
    // Spent, so dead-lettered; unreadable, so never handed to `herald dlq` or the dead-letter function.
    expect(q.deadLetters()).toEqual([]);
    expect(q.counts()).toMatchObject({ deadLettered: 0, quarantined: 1 });
  });

  it("quarantines a row whose properties are JSON but not a flat map of strings, numbers and booleans", () => {
    const q = queue();
    plant({ properties: "null" });
    plant({ properties: '{"heraldKind":{"nested":true}}' });

    expect(q.receive(5)).toEqual([]);
    expect(q.counts()).toMatchObject({ active: 0, quarantined: 2 });
  });

  it("cannot be given a row of the wrong shape: the table refuses it", () => {
    expect(() =>
      brokerDatabase(root).run(
        `INSERT INTO messages (queue, message_id, properties, body, enqueued_at, visible_at)
         VALUES ('notifications', 'x', '{}', '{}', 'soon', 0)`,
      ),
    ).toThrow(/cannot store TEXT value in INTEGER column/);
  });

  it("does not hand a message it holds back to its own next receive when the wall clock jumps", () => {
    const q = new LocalQueue({ directory: root, lockDurationMs: 60_000 });
    q.send([{ body: { n: 1 }, messageId: "held" }]);
    const [held] = q.receive(1);
    expect(held?.messageId).toBe("held");
    const realNow = Date.now;
    Date.now = () => realNow() + 10 * 60_000; // ten minutes forward
    try {
      expect(q.receive(1)).toEqual([]);
    } finally {
      Date.now = realNow;
    }
    q.complete(held!);
  });
});
