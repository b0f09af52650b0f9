import type { CloudEvent } from "../../shared/model/cloud-event";
import { WORK_KINDS } from "../../shared/notifications/work-items";
import type { RecordedMessage } from "../support/memory-queue";
import { NotificationChanges, seedUsers } from "./notification-changes";
import { NotificationsHarness } from "./notifications-harness";

const text = (t: string) => ({ text: t, format: "markdown" });

/**
 * A request's `herald.notification.completed` when it is updated or recalled, before or after it
 * completed: published once, in the state its status shows, and the request's completion checks
 * end (none is left scheduled on the work queue, as the broker's scheduled count would show).
 */
describe("a request's completion when it is updated or recalled", () => {
  let h: NotificationsHarness;
  let changes: NotificationChanges;

  beforeAll(async () => {
    h = await NotificationsHarness.start({}, { pacing: false });
    changes = new NotificationChanges(h);
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  async function fanOut(count: number): Promise<{ id: string; deliveries: RecordedMessage[] }> {
    const users = await seedUsers(h, count);
    const request = h.request({
      recipients: users.map((u) => ({ teamsUserId: u.id })),
      message: text("rev 1"),
    });
    await h.deliver({ body: request, messageId: request.id });
    return { id: request.id, deliveries: h.queue.takeAll(WORK_KINDS.delivery) };
  }

  function completedEvents(id: string): CloudEvent[] {
    return h.topic.sent
      .map((m) => m.body as CloudEvent)
      .filter(
        (e) =>
          e.type === "herald.notification.completed" &&
          (e.data as { requestId?: string }).requestId === id,
      );
  }

  /** Completion checks still on the work queue, scheduled or due. */
  const checksLeft = () => h.queue.waitingOf(WORK_KINDS.completionCheck).length;

  /** The request's one `completed`, with nothing left on the work queue after it. */
  function completedOnce(id: string): CloudEvent {
    const [completed, ...more] = completedEvents(id);
    expect(more).toEqual([]);
    expect(checksLeft()).toBe(0);
    expect(h.queue.waiting).toEqual([]);
    return completed!;
  }

  /** A sole recipient whose first send was answered 429: pending, its retry scheduled. */
  async function soleRecipientRetrying(): Promise<string> {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }], message: text("rev 1") });
    h.sim.failNext("sendActivity", { status: 429, retryAfterSeconds: 5 });
    await h.deliver({ body: request, messageId: request.id });
    expect((await changes.status(request.id)).counts.pending).toBe(1);
    return request.id;
  }

  const recalledSole = {
    state: "recalled",
    counts: { total: 1, pending: 0, sent: 0, cancelled: 1 },
  };

  it("publishes completed once and leaves no completion check when a completed fan-out is updated", async () => {
    const { id, deliveries } = await fanOut(6);
    for (const d of deliveries) await h.deliverQueued(d);
    await h.drain();
    expect(completedEvents(id)).toHaveLength(1);

    expect((await changes.update(id, { message: text("rev 2") })).status).toBe(202);
    await h.drain();

    completedOnce(id);
    expect((await changes.status(id)).recipients.every((r) => r.revision === 2)).toBe(true);
  });

  it("publishes completed once and leaves no completion check when a completed fan-out is recalled", async () => {
    const { id, deliveries } = await fanOut(6);
    for (const d of deliveries) await h.deliverQueued(d);
    await h.drain();

    expect((await changes.recall(id)).status).toBe(202);
    await h.drain();

    completedOnce(id);
    expect((await changes.status(id)).counts).toMatchObject({ total: 6, recalled: 6 });
  });

  it("publishes completed once, after every copy shows revision 2, when the update comes half-way", async () => {
    const { id, deliveries } = await fanOut(6);
    for (const d of deliveries.slice(0, 3)) await h.deliverQueued(d);

    expect((await changes.update(id, { message: text("rev 2") })).status).toBe(202);
    for (const d of deliveries.slice(3)) await h.deliverQueued(d);
    await h.drain();

    expect(completedOnce(id).data).toMatchObject({
      state: "completed",
      counts: { total: 6, sent: 6 },
    });
  });

  it("publishes completed once, as recalled, when the recall comes half-way", async () => {
    const { id, deliveries } = await fanOut(6);
    for (const d of deliveries.slice(0, 3)) await h.deliverQueued(d);

    expect((await changes.recall(id)).status).toBe(202);
    for (const d of deliveries.slice(3)) await h.deliverQueued(d);
    await h.drain();

    const { data } = completedOnce(id);
    expect(data).toMatchObject({ state: "recalled", counts: { total: 6, sent: 0, pending: 0 } });
    const { counts } = data as { counts: { recalled: number; cancelled: number } };
    expect(counts.recalled + counts.cancelled).toBe(6);
  });

  it("publishes completed once, as recalled, when a sole recipient waiting out a retry is recalled", async () => {
    const id = await soleRecipientRetrying();

    expect((await changes.recall(id)).status).toBe(202);
    // The retry comes before the recall's pass: the delivery itself finds the request recalled.
    const [retry] = h.queue.takeAll(WORK_KINDS.delivery);
    h.clock.advanceTo(retry!.scheduledFor!);
    await h.deliverQueued(retry!);
    await h.drain();

    expect(completedOnce(id).data).toMatchObject(recalledSole);
  });

  it("publishes completed once, as recalled, when the recall pass cancels a sole recipient before its retry", async () => {
    const id = await soleRecipientRetrying();

    expect((await changes.recall(id)).status).toBe(202);
    for (const pass of h.queue.takeAll(WORK_KINDS.revision)) await h.deliverQueued(pass);
    await h.drain();

    expect(completedOnce(id).data).toMatchObject(recalledSole);
  });
});
