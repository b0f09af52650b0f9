import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { run } from "../../shared/cli/cli";
import { LocalQueue } from "../../shared/queue/local-queue";
import { LocalSessionQueue } from "../../shared/queue/local-session-queue";

/** `herald dlq` against npm start's local queue: real files, the real CLI, no fakes. */

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function herald(args: string[], cwd: string): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const code = await run(args, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env: {},
    cwd,
  });
  return { code, stdout, stderr };
}

let dir: string;
let queue: LocalQueue;

/** Three messages that used their one delivery and went to the dead-letter folder. */
async function deadLetterThree(): Promise<void> {
  await queue.enqueue([
    { body: { id: "r-1", tenantId: "t" }, messageId: "r-1", correlationId: "c-1" },
    { body: { id: "r-2" }, messageId: "r-2", applicationProperties: { heraldKind: "delivery" } },
    { body: { id: "r-3" }, messageId: "r-3" },
  ]);
  const received = await queue.receive(3);
  expect(received).toHaveLength(3);
  for (const message of received) {
    await queue.deadLetter(message, { reason: "MaxDeliveryCountExceeded", description: "boom" });
  }
}

async function listIds(): Promise<{ id: string; messageId: string }[]> {
  const listed = await herald(["dlq", "list", "--queue-dir", "queue", "--json"], dir);
  expect(listed.code).toBe(0);
  return JSON.parse(listed.stdout) as { id: string; messageId: string }[];
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "herald-dlq-"));
  queue = new LocalQueue({ directory: join(dir, "queue"), queueName: "notifications" });
  await deadLetterThree();
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("herald dlq on the local queue", () => {
  it("lists every dead letter with its id, kind, message id and reason", async () => {
    const result = await herald(["dlq", "list", "--queue-dir", "queue"], dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("3 dead letter(s) in local queue");
    expect(result.stdout).toMatch(/ delivery {2}message r-2 /);
    expect(result.stdout).toContain("MaxDeliveryCountExceeded: boom");
    expect((await listIds()).map((l) => l.messageId).sort()).toEqual(["r-1", "r-2", "r-3"]);
  });

  it("shows one dead letter with its body and correlation id", async () => {
    const [first] = (await listIds()).filter((l) => l.messageId === "r-1");
    const shown = await herald(["dlq", "show", first!.id, "--queue-dir", "queue"], dir);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      messageId: "r-1",
      correlationId: "c-1",
      body: { id: "r-1", tenantId: "t" },
      kind: "request",
    });
  });

  it("replays one dead letter to the queue with the same message id, body and properties", async () => {
    const target = (await listIds()).find((l) => l.messageId === "r-2")!;
    const replayed = await herald(["dlq", "replay", target.id, "--queue-dir", "queue"], dir);
    expect(replayed.code).toBe(0);
    expect(replayed.stdout).toContain("replayed 1 dead letter(s)");
    expect(await queue.counts()).toMatchObject({ active: 1, deadLettered: 2 });
    const [back] = await queue.receive(1);
    expect(back).toMatchObject({
      messageId: "r-2",
      body: { id: "r-2" },
      applicationProperties: { heraldKind: "delivery" },
      deliveryCount: 1,
    });
  });

  it("changes nothing on a dry run", async () => {
    const result = await herald(
      ["dlq", "replay", "--all", "--dry-run", "--queue-dir", "queue"],
      dir,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("would replay 3 dead letter(s)");
    expect(await queue.counts()).toMatchObject({ active: 0, deadLettered: 3 });
  });

  it("purges every dead letter with --all, and only then", async () => {
    const refused = await herald(["dlq", "purge", "--queue-dir", "queue"], dir);
    expect(refused.code).toBe(2);
    expect(await queue.counts()).toMatchObject({ deadLettered: 3 });
    const purged = await herald(["dlq", "purge", "--all", "--queue-dir", "queue"], dir);
    expect(purged.code).toBe(0);
    expect(purged.stdout).toContain("purged 3 dead letter(s)");
    expect(await queue.counts()).toMatchObject({ active: 0, deadLettered: 0 });
  });

  it("exits 1 and names the id when a dead letter to replay is not there", async () => {
    const result = await herald(["dlq", "replay", "000.nope.1", "--queue-dir", "queue"], dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("000.nope.1");
    expect(await queue.counts()).toMatchObject({ active: 0, deadLettered: 3 });
  });

  it("reads and replays the session work queue's dead letters with --queue herald-work, keeping the session", async () => {
    const work = new LocalSessionQueue({
      directory: join(dir, "queue"),
      queueName: "herald-work",
      maxDeliveryCount: 1,
    });
    await work.enqueue([{ body: { kind: "delivery" }, messageId: "w-1", sessionId: "tenant-a" }]);
    const drainer = work.startDraining(() => Promise.reject(new Error("boom")), {
      functionName: "work",
      pollIntervalMs: 20,
      retryDelayMs: 0,
      logHandler: () => {},
    });
    try {
      for (let i = 0; i < 500 && (await work.counts()).deadLettered === 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      await drainer.stop();
    }
    const listed = await herald(
      ["dlq", "list", "--queue", "herald-work", "--queue-dir", "queue", "--json"],
      dir,
    );
    const letters = JSON.parse(listed.stdout) as { id: string; messageId: string }[];
    expect(letters.map((l) => l.messageId)).toEqual(["w-1"]);

    const replayed = await herald(
      [
        "dlq",
        "replay",
        letters[0]!.id,
        "--queue",
        "herald-work",
        "--queue-dir",
        "queue",
        "--new-message-id",
      ],
      dir,
    );
    expect(replayed.code).toBe(0);
    expect(await work.counts()).toMatchObject({ deadLettered: 0, active: 1, sessions: 1 });
  });
});
