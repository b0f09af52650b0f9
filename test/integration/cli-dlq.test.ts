import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { run } from "../../shared/cli/cli";
import { startDraining } from "../../shared/local-host/queue-drain";
import { LocalQueue } from "../../shared/queue/local-queue";

/** `herald dlq` against npm start's local broker: its real database, the real CLI, no fakes. */

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

/** Three messages that used their one delivery and were dead-lettered. */
async function deadLetterThree(): Promise<void> {
  queue.send([
    { body: { id: "r-1", tenantId: "t" }, messageId: "r-1", correlationId: "c-1" },
    { body: { id: "r-2" }, messageId: "r-2", applicationProperties: { heraldKind: "delivery" } },
    { body: { id: "r-3" }, messageId: "r-3" },
  ]);
  const received = queue.receive(3);
  expect(received).toHaveLength(3);
  for (const message of received) {
    queue.deadLetter(message, { reason: "MaxDeliveryCountExceeded", description: "boom" });
  }
  // Their ids were sent more than the (1 ms) duplicate detection window ago.
  await new Promise((done) => setTimeout(done, 5));
}

async function listIds(): Promise<{ id: string; messageId: string }[]> {
  const listed = await herald(["dlq", "list", "--queue-dir", "queue", "--json"], dir);
  expect(listed.code).toBe(0);
  return JSON.parse(listed.stdout) as { id: string; messageId: string }[];
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "herald-dlq-"));
  queue = new LocalQueue({
    directory: join(dir, "queue"),
    queueName: "notifications",
    duplicateDetectionWindowMs: 1,
  });
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
    expect(queue.counts()).toMatchObject({ active: 1, deadLettered: 2 });
    const [back] = queue.receive(1);
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
    expect(queue.counts()).toMatchObject({ active: 0, deadLettered: 3 });
  });

  it("purges every dead letter with --all, and only then", async () => {
    const refused = await herald(["dlq", "purge", "--queue-dir", "queue"], dir);
    expect(refused.code).toBe(2);
    expect(queue.counts()).toMatchObject({ deadLettered: 3 });
    const purged = await herald(["dlq", "purge", "--all", "--queue-dir", "queue"], dir);
    expect(purged.code).toBe(0);
    expect(purged.stdout).toContain("purged 3 dead letter(s)");
    expect(queue.counts()).toMatchObject({ active: 0, deadLettered: 0 });
  });

  it("exits 1 and names the id when a dead letter to replay is not there", async () => {
    const result = await herald(["dlq", "replay", "999", "--queue-dir", "queue"], dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("999");
    expect(queue.counts()).toMatchObject({ active: 0, deadLettered: 3 });
  });

  it("keeps a dead letter whose message id was sent within the duplicate detection window, and says how to replay it", async () => {
    const intake = new LocalQueue({ directory: join(dir, "queue"), queueName: "notifications" });
    intake.send([{ body: { id: "r-4" }, messageId: "r-4" }]);
    intake.deadLetter(intake.receive(1)[0]!, { reason: "Poison", description: "" });
    const id = (await listIds()).find((l) => l.messageId === "r-4")!.id;

    const refused = await herald(["dlq", "replay", id, "--queue-dir", "queue"], dir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/duplicate detection window.*--new-message-id/);
    expect(intake.counts()).toMatchObject({ active: 0, deadLettered: 4 });

    const replayed = await herald(
      ["dlq", "replay", id, "--queue-dir", "queue", "--new-message-id"],
      dir,
    );
    expect(replayed.code).toBe(0);
    expect(intake.receive(1)[0]).toMatchObject({ body: { id: "r-4" } });
  });

  it("reads and replays the session work queue's dead letters with --queue herald-work, keeping the session", async () => {
    const work = new LocalQueue({
      directory: join(dir, "queue"),
      queueName: "herald-work",
      sessions: true,
      maxDeliveryCount: 1,
    });
    work.send([{ body: { kind: "delivery" }, messageId: "w-1", sessionId: "tenant-a" }]);
    const drainer = startDraining(work, () => Promise.reject(new Error("boom")), {
      functionName: "work",
      pollIntervalMs: 20,
      retryDelayMs: 0,
      logHandler: () => {},
    });
    try {
      for (let i = 0; i < 500 && work.counts().deadLettered === 0; i++)
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
    expect(work.counts()).toMatchObject({ deadLettered: 0, active: 1, sessions: 1 });
    expect(work.acceptSession()).toBe("tenant-a");
  });
});
