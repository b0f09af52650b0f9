import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { startDeadLetterDraining, startDraining } from "../../shared/local-host/queue-drain";
import { LocalQueue } from "../../shared/queue/local-queue";
import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { DeadLetterCopies } from "../../shared/store/dead-letter-copies";
import type { RecordedMessage } from "../support/memory-queue";
import { NotificationsHarness } from "./notifications-harness";

const DEAD_LETTERED = {
  DeadLetterReason: "MaxDeliveryCountExceeded",
  DeadLetterErrorDescription: "Message could not be consumed after 5 delivery attempts.",
};

describe("dead letters make requests final", () => {
  let h: NotificationsHarness;

  beforeAll(async () => {
    h = await NotificationsHarness.start({ MaxDeliveryAttempts: "5" });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  /** A known user's request whose first send failed (503): its scheduled retry, taken off the queue. */
  async function requestWithRetry() {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    h.sim.failNext("sendActivity", { status: 503 });
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: request, messageId: request.id });
    const [retry] = h.queue.takeAll();
    return { user, request, retry: retry! };
  }

  /**
   * A known user's request delivered inline by its dispatch, whose work item was never settled
   * (the broker dead-letters it in the end); returns the dispatch as it was queued.
   */
  async function deliveredSoleRecipient() {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.invokeIntakeOnly({ body: request, messageId: request.id });
    const [dispatch] = h.queue.takeAll();
    await h.deliverQueued(dispatch!);
    h.queue.takeAll();
    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    return { request, dispatch: dispatch! };
  }

  /** The work item as the broker dead-letters it: same body and id, with the reason. */
  const deadLettered = (item: RecordedMessage) => ({
    body: item.body,
    messageId: item.messageId!,
    deliveryCount: 5,
    applicationProperties: { ...item.applicationProperties, ...DEAD_LETTERED },
  });

  it("ends a recipient failed with the broker's reason when its retry message is dead-lettered, and the request final", async () => {
    const { user, request, retry } = await requestWithRetry();
    expect(retry.applicationProperties?.[WORK_KIND_PROPERTY]).toBe("delivery");
    expect((await h.services.status.get(request.id))?.final).toBe(false);

    await h.deliverDeadLetter("work", deadLettered(retry));

    const status = await h.services.status.get(request.id);
    expect(status).toMatchObject({ state: "completed", final: true, counts: { failed: 1 } });
    expect(status?.recipients[0]?.lastError).toMatch(/dead-lettered.*MaxDeliveryCountExceeded/);
    // The message is kept for the operator, with why and what was recorded.
    const kept = await new DeadLetterCopies(h.tables).list(h.config.workQueueName);
    expect(kept.find((k) => k.messageId === retry.messageId)).toMatchObject({
      reason: "MaxDeliveryCountExceeded",
      outcome: "recipient failed",
      body: retry.body,
    });
    expect(h.sim.messagesToUser(user)).toHaveLength(0);
  });

  it("ends a request failed, and every recipient failed with the reason, when its dispatch is dead-lettered", async () => {
    const [a, b] = [h.sim.addUser(), h.sim.addUser()];
    const request = h.request({ recipients: [{ teamsUserId: a.id }, { teamsUserId: b.id }] });
    await h.invokeIntakeOnly({ body: request, messageId: request.id });
    const [dispatch] = h.queue.takeAll();
    expect(dispatch?.applicationProperties?.[WORK_KIND_PROPERTY]).toBe("dispatch");

    await h.deliverDeadLetter("work", deadLettered(dispatch!));
    const status = await h.services.status.get(request.id);
    expect(status).toMatchObject({ state: "failed", final: true, counts: { total: 2, failed: 2 } });
    expect(status?.lastError).toMatch(/MaxDeliveryCountExceeded/);
    // Both recipients are listed, though the dispatch never wrote their rows.
    for (const r of status!.recipients) expect(r.lastError).toMatch(/dead-lettered/);
    expect(h.sim.messagesToUser(a)).toHaveLength(0);
    expect(h.sim.messagesToUser(b)).toHaveLength(0);
  });

  it("reports one completed for a sole recipient's request whose dispatch was dead-lettered after it delivered (the topic was down meanwhile)", async () => {
    const { request, dispatch } = await deliveredSoleRecipient();

    await h.deliverDeadLetter("work", deadLettered(dispatch));

    const page = await h.services.eventLog.read(h.key(request.id));
    const events = page.kind === "found" ? page.page.events : [];
    const completed = events.filter((e) => e.type === "herald.notification.completed");
    expect(completed).toHaveLength(1);
    expect(completed[0]?.data).toMatchObject({ counts: { sent: 1, total: 1 } });
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  });

  it("keeps a request completed whose dispatch was dead-lettered after its sole recipient got the message", async () => {
    const { request, dispatch } = await deliveredSoleRecipient();
    // The dispatch died after the send, before its last write: the request row still says queued.
    const stored = await h.requests.get(h.key(request.id));
    await h.requests.update(stored!, { state: "queued" });

    await h.deliverDeadLetter("work", deadLettered(dispatch));

    const status = await h.services.status.get(request.id);
    expect(status).toMatchObject({
      state: "completed",
      final: true,
      counts: { sent: 1, total: 1 },
    });
    expect(status?.lastError).toBeUndefined();
    expect(status?.recipients[0]).toMatchObject({ state: "sent" });
  });

  it("records an intake message that was dead-lettered before its request was stored as a failed request", async () => {
    const request = h.request({ recipients: [{ teamsUserId: "29:never-stored" }] });
    await h.deliverDeadLetter("intake", {
      body: request,
      messageId: request.id,
      deliveryCount: 5,
      applicationProperties: DEAD_LETTERED,
    });
    expect(await h.services.status.get(request.id)).toMatchObject({ state: "failed", final: true });
  });

  it("records a dead letter once however often it is read", async () => {
    const { request, retry } = await requestWithRetry();
    const letter = deadLettered(retry);
    await h.deliverDeadLetter("work", letter);
    const first = await h.services.status.get(request.id);
    await h.deliverDeadLetter("work", letter);
    expect(await h.services.status.get(request.id)).toEqual(first);
  });

  it("hands the local session queue's dead letters to the dead-letter function once, and keeps them for herald dlq", async () => {
    const directory = await mkdtemp(join(tmpdir(), "herald-dlq-"));
    try {
      const queue = new LocalQueue({
        directory,
        queueName: h.config.workQueueName,
        sessions: true,
        maxDeliveryCount: 1,
      });
      const { request, retry } = await requestWithRetry();
      queue.send([
        {
          body: retry.body,
          messageId: retry.messageId!,
          sessionId: retry.sessionId!,
          applicationProperties: retry.applicationProperties!,
        },
      ]);
      // One delivery that throws: with a max delivery count of 1 the queue dead-letters it.
      const failing = startDraining(
        queue,
        () => Promise.reject(new Error("simulated poison message")),
        { functionName: "work", pollIntervalMs: 20, retryDelayMs: 0, logHandler: () => {} },
      );
      await waitFor(() => Promise.resolve(queue.deadLetters().length === 1));
      await failing.stop();

      // The dead-letter subqueue is read without sessions, as Service Bus reads it.
      const subqueue = new LocalQueue({ directory, queueName: h.config.workQueueName });
      const drainer = startDeadLetterDraining(subqueue, h.herald.deadLetters.work, {
        functionName: "work-dead-letters",
        pollIntervalMs: 20,
        logHandler: () => {},
      });
      await waitFor(async () => (await h.services.status.get(request.id))?.final === true);
      await drainer.stop();

      expect(await h.services.status.get(request.id)).toMatchObject({
        state: "completed",
        counts: { failed: 1 },
      });
      // Handed over once, and still there for `herald dlq`.
      expect(queue.deadLetters()).toHaveLength(1);
      expect(subqueue.deadLetters({ unhandledOnly: true })).toEqual([]);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
