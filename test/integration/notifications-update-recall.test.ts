import type { CloudEvent } from "../../shared/model/cloud-event";
import type { RecordedMessage } from "../support/memory-queue";
import { NotificationChanges, seedUsers } from "./notification-changes";
import { NotificationsHarness } from "./notifications-harness";

const text = (t: string) => ({ text: t, format: "markdown" });

describe("updating and recalling a sent notification", () => {
  let h: NotificationsHarness;
  let changes: NotificationChanges;

  beforeAll(async () => {
    // Pacing off: these tests are about which revision every chat ends on, not Teams' rate.
    h = await NotificationsHarness.start({}, { pacing: false });
    changes = new NotificationChanges(h);
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  /** Hands the given work items to the trigger, eight at a time. */
  async function deliverAll(messages: readonly RecordedMessage[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < messages.length) await h.deliverQueued(messages[next++]!);
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  }

  it("ends every chat of a 1,000-recipient fan-out on revision 2 when the update comes half-way", async () => {
    const users = await seedUsers(h, 1_000);
    const request = h.request({
      recipients: users.map((u) => ({ teamsUserId: u.id })),
      message: text("Maintenance at **10:00** (rev 1)"),
    });
    await h.deliver({ body: request, messageId: request.id });
    const deliveries = h.queue.takeAll();
    await deliverAll(deliveries.slice(0, 500));

    const answer = await changes.update(request.id, {
      message: text("Maintenance at **11:00** (rev 2)"),
    });
    expect(answer.status).toBe(202);
    expect(answer.jsonBody).toMatchObject({ revision: 2, recalled: false });
    await deliverAll(deliveries.slice(500));
    await h.drain(8, 60);

    const views = users.map((u) => changes.visible(u));
    expect(views.filter((v) => v.length !== 1)).toEqual([]);
    expect(views.filter((v) => !v[0]!.includes("rev 2"))).toEqual([]);
    const status = await changes.status(request.id);
    expect(status).toMatchObject({ revision: 2, recalled: false, state: "completed" });
    expect(status.counts).toMatchObject({ total: 1_000, sent: 1_000 });
    expect(status.recipients.filter((r) => r.revision !== 2)).toEqual([]);
  }, 240_000);

  it("leaves every chat on the revision that got the higher number when two updates race", async () => {
    const users = await seedUsers(h, 20);
    const request = h.request({
      recipients: users.map((u) => ({ teamsUserId: u.id })),
      message: text("v1"),
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();

    const answers = await Promise.all([
      changes.update(request.id, { message: text("from A") }),
      changes.update(request.id, { message: text("from B") }),
    ]);
    const revisions = answers.map((a) => (a.jsonBody as { revision: number }).revision);
    expect(revisions.sort()).toEqual([2, 3]);
    const winner = answers.find((a) => (a.jsonBody as { revision: number }).revision === 3)!;
    const winnerText = winner === answers[0] ? "from A" : "from B";
    await h.drain(8, 60);

    for (const user of users) expect(changes.visible(user)).toEqual([winnerText]);
    const status = await changes.status(request.id);
    expect(status.revision).toBe(3);
    expect(status.recipients.every((r) => r.revision === 3)).toBe(true);
  });

  it("ends on the latest revision when the update races a send that gets 429 and then succeeds", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }], message: text("old") });
    h.sim.failNext("sendActivity", { status: 429, retryAfterSeconds: 1 });
    await h.deliver({ body: request, messageId: request.id });
    expect((await changes.status(request.id)).counts.pending).toBe(1);

    expect((await changes.update(request.id, { message: text("new") })).status).toBe(202);
    await h.drain(8, 60);

    expect(changes.visible(user!)).toEqual(["new"]);
    expect((await changes.status(request.id)).recipients[0]).toMatchObject({
      state: "sent",
      revision: 2,
    });
  });

  it("replaces a sent copy in place: Teams shows it edited, and the status says revision 2", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }], message: text("first") });
    await h.deliver({ body: request, messageId: request.id });

    await changes.update(request.id, { message: text("second"), summary: "fixed" });
    await h.drain();

    const chat = h.sim.chatOf(user!);
    expect(chat).toHaveLength(1);
    expect(chat[0]).toMatchObject({ text: "second", edited: true, deleted: false });
    expect(h.sim.countRoute("updateActivity", 200)).toBe(1);
  });

  it("sends the latest afresh, once, when the copy to update is gone (404)", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }], message: text("first") });
    await h.deliver({ body: request, messageId: request.id });
    h.sim.failNext("updateActivity", { status: 404, code: "ActivityNotFoundInConversation" });

    await changes.update(request.id, { message: text("second") });
    await h.drain();

    expect(changes.visible(user!)).toEqual(["first", "second"]);
    expect((await changes.status(request.id)).recipients[0]).toMatchObject({ revision: 2 });
  });

  it("records a recipient unreachable when Teams answers the update 403", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }], message: text("first") });
    await h.deliver({ body: request, messageId: request.id });
    h.sim.failNext("updateActivity", { status: 403, code: "ConversationBlockedByUser" });

    await changes.update(request.id, { message: text("second") });
    await h.drain();

    expect((await changes.status(request.id)).recipients[0]).toMatchObject({
      state: "unreachable",
      revision: 1,
    });
  });

  it("retries an update answered 503 as scheduled work and then applies it", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }], message: text("first") });
    await h.deliver({ body: request, messageId: request.id });
    h.sim.failNext("updateActivity", { status: 503 });

    await changes.update(request.id, { message: text("second") });
    await h.drain();

    expect(changes.visible(user!)).toEqual(["second"]);
    expect(h.sim.countRoute("updateActivity", 503)).toBe(1);
  });

  it("never sends a recalled scheduled request, and records its recipients cancelled", async () => {
    const users = await seedUsers(h, 3);
    const request = h.request({
      recipients: users.map((u) => ({ teamsUserId: u.id })),
      notBefore: new Date(h.clock.now().getTime() + 3_600_000).toISOString(),
    });
    await h.deliver({ body: request, messageId: request.id });

    expect((await changes.recall(request.id)).status).toBe(202);
    await h.drain();

    expect(h.sim.countRoute("sendActivity")).toBe(0);
    const status = await changes.status(request.id);
    expect(status).toMatchObject({ state: "recalled", final: true, recalled: true });
    expect(status.counts).toMatchObject({ total: 3, cancelled: 3 });
  });

  it("moves a scheduled request to a later time, and sends it then", async () => {
    const [user] = await seedUsers(h, 1);
    const at = h.clock.now().getTime() + 3_600_000;
    const request = h.request({
      recipients: [{ teamsUserId: user!.id }],
      notBefore: new Date(at).toISOString(),
    });
    await h.deliver({ body: request, messageId: request.id });
    const later = new Date(at + 3_600_000).toISOString();

    expect((await changes.update(request.id, { notBefore: later })).status).toBe(202);
    const [dispatch] = h.queue.takeAll().filter((m) => m.scheduledFor !== undefined);
    h.clock.advanceTo(dispatch!.scheduledFor!);
    await h.deliverQueued(dispatch!);

    expect(h.sim.countRoute("sendActivity")).toBe(0);
    const [again] = h.queue.takeAll().filter((m) => m.scheduledFor !== undefined);
    expect(again?.scheduledFor?.toISOString()).toBe(later);
    h.clock.advanceTo(again!.scheduledFor!);
    await h.deliverQueued(again!);
    expect(changes.visible(user!)).toHaveLength(1);
    expect((await changes.status(request.id)).notBefore).toBe(later);
  });

  it("moves a scheduled request to an earlier time", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({
      recipients: [{ teamsUserId: user!.id }],
      notBefore: new Date(h.clock.now().getTime() + 3_600_000).toISOString(),
    });
    await h.deliver({ body: request, messageId: request.id });
    h.queue.takeAll();

    const now = h.clock.now().toISOString();
    expect((await changes.update(request.id, { notBefore: now })).status).toBe(202);
    await h.drain();

    expect(changes.visible(user!)).toHaveLength(1);
  });

  it("refuses to move the time of a request already sent (409)", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }] });
    await h.deliver({ body: request, messageId: request.id });

    const answer = await changes.update(request.id, { notBefore: new Date().toISOString() });

    expect(answer.status).toBe(409);
  });

  it("recalls half-way through a 1,000-recipient fan-out: no chat keeps a copy, the rest cancelled", async () => {
    const users = await seedUsers(h, 1_000);
    const request = h.request({ recipients: users.map((u) => ({ teamsUserId: u.id })) });
    await h.deliver({ body: request, messageId: request.id });
    const deliveries = h.queue.takeAll();
    await deliverAll(deliveries.slice(0, 500));
    const sentBefore = h.sim.countRoute("sendActivity", 201);

    expect((await changes.recall(request.id)).status).toBe(202);
    // The recall's pass runs before the deliveries still queued (the session's order).
    await deliverAll(h.queue.takeAll());
    await deliverAll(deliveries.slice(500));
    await h.drain(8, 60);

    expect(changes.keepingACopy(users)).toEqual([]);
    expect(h.sim.countRoute("sendActivity", 201)).toBe(sentBefore);
    const status = await changes.status(request.id);
    expect(status).toMatchObject({ state: "recalled", final: true, recalled: true });
    expect(status.counts).toMatchObject({ total: 1_000, recalled: 500, cancelled: 500 });
  }, 240_000);

  it("deletes a copy that was in flight when the recall was accepted, as soon as its send returns", async () => {
    const users = await seedUsers(h, 2);
    const request = h.request({ recipients: users.map((u) => ({ teamsUserId: u.id })) });
    await h.deliver({ body: request, messageId: request.id });
    const [first, second] = h.queue.takeAll();
    h.sim.setLatency(300, "sendActivity");

    const inFlight = h.deliverQueued(first!);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await changes.recall(request.id)).status).toBe(202);
    await deliverAll(h.queue.takeAll());
    await inFlight;
    h.sim.setLatency(0, "sendActivity");
    await h.deliverQueued(second!);
    await h.drain(8, 60);

    expect(changes.keepingACopy(users)).toEqual([]);
    expect((await changes.status(request.id)).counts).toMatchObject({
      recalled: 1,
      cancelled: 1,
    });
  });

  it("is idempotent: a second recall answers 202 again, and an update after it is 409", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }] });
    await h.deliver({ body: request, messageId: request.id });
    await changes.recall(request.id);
    await h.drain();

    expect((await changes.recall(request.id)).status).toBe(202);
    const update = await changes.update(request.id, { message: text("too late") });
    expect(update.status).toBe(409);
    expect(update.jsonBody).toMatchObject({
      message: expect.stringContaining("recalled") as unknown,
    });
    await h.drain();
    expect(h.sim.countRoute("deleteActivity", 200)).toBe(1);
  });

  it("answers 404 for a recall or update of an unknown id", async () => {
    expect((await changes.recall("no-such-request")).status).toBe(404);
    expect((await changes.update("no-such-request", { summary: "x" })).status).toBe(404);
  });

  it("records a copy already deleted (404 on DELETE) as recalled", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }] });
    await h.deliver({ body: request, messageId: request.id });
    h.sim.failNext("deleteActivity", { status: 404, code: "ActivityNotFoundInConversation" });

    await changes.recall(request.id);
    await h.drain();

    expect((await changes.status(request.id)).recipients[0]).toMatchObject({
      state: "recalled",
    });
  });

  it("records a recipient unreachable when Teams answers the delete 403", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }] });
    await h.deliver({ body: request, messageId: request.id });
    h.sim.failNext("deleteActivity", { status: 403, code: "ConversationBlockedByUser" });

    await changes.recall(request.id);
    await h.drain();

    expect((await changes.status(request.id)).recipients[0]).toMatchObject({
      state: "unreachable",
    });
  });

  it("takes updates and recalls from the intake queue as the HTTP API does, once per message", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }], message: text("one") });
    await h.deliver({ body: request, messageId: request.id });
    const update = {
      schemaVersion: 1,
      operation: "update",
      id: request.id,
      tenantId: h.sim.tenantId,
      message: text("two"),
    };

    await h.invokeIntakeOnly({ body: update, messageId: "update-1" });
    await h.invokeIntakeOnly({ body: update, messageId: "update-1", deliveryCount: 2 });
    await h.drain();
    expect(changes.visible(user!)).toEqual(["two"]);
    expect((await changes.status(request.id)).revision).toBe(2);

    const recall = {
      schemaVersion: 1,
      operation: "recall",
      id: request.id,
      tenantId: h.sim.tenantId,
    };
    await h.invokeIntakeOnly({ body: recall, messageId: "recall-1" });
    await h.drain();
    expect(changes.visible(user!)).toEqual([]);
    expect((await changes.status(request.id)).state).toBe("recalled");
  });

  it("refuses an update on the intake queue that names no change, and changes nothing", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }], message: text("one") });
    await h.deliver({ body: request, messageId: request.id });

    await h.invokeIntakeOnly({
      body: { schemaVersion: 1, operation: "update", id: request.id, tenantId: h.sim.tenantId },
      messageId: "update-empty",
    });

    expect(h.queue.takeAll()).toEqual([]);
    expect((await changes.status(request.id)).revision).toBe(1);
  });

  it("publishes herald.delivery.updated and herald.delivery.recalled, once per copy, with the revision", async () => {
    const users = await seedUsers(h, 2);
    const request = h.request({
      recipients: users.map((u) => ({ teamsUserId: u.id })),
      message: text("one"),
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    await changes.update(request.id, { message: text("two") });
    await h.drain();
    await changes.recall(request.id);
    await h.drain();

    const events = h.topic.sent
      .map((m) => m.body as CloudEvent)
      .filter((e) => (e.data as { requestId?: string }).requestId === request.id);
    const ofType = (type: string) => events.filter((e) => e.type === type);
    expect(ofType("herald.delivery.updated").map((e) => e.data)).toEqual([
      expect.objectContaining({ state: "sent", revision: 2 }),
      expect.objectContaining({ state: "sent", revision: 2 }),
    ]);
    expect(ofType("herald.delivery.recalled")).toHaveLength(2);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect(JSON.stringify(events)).not.toContain("two");
  });

  it("publishes herald.delivery.cancelled for each recipient of a recalled scheduled request", async () => {
    const users = await seedUsers(h, 2);
    const request = h.request({
      recipients: users.map((u) => ({ teamsUserId: u.id })),
      notBefore: new Date(h.clock.now().getTime() + 3_600_000).toISOString(),
    });
    await h.deliver({ body: request, messageId: request.id });

    await changes.recall(request.id);
    await h.drain();

    const cancelled = h.topic.sent
      .map((m) => m.body as CloudEvent)
      .filter(
        (e) =>
          e.type === "herald.delivery.cancelled" &&
          (e.data as { requestId?: string }).requestId === request.id,
      );
    expect(cancelled).toHaveLength(2);
  });

  it("refuses an update without anything to change, naming the fields", async () => {
    const [user] = await seedUsers(h, 1);
    const request = h.request({ recipients: [{ teamsUserId: user!.id }] });
    await h.deliver({ body: request, messageId: request.id });

    const answer = await changes.update(request.id, { recipients: [] });

    expect(answer.status).toBe(400);
    expect(JSON.stringify(answer.jsonBody)).toContain("recipients");
  });
});
