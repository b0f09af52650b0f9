import type { CloudEvent } from "../../shared/model/cloud-event";
import type { SimUser } from "../simulator";
import { NotificationChanges, seedUsers } from "./notification-changes";
import { NotificationsHarness } from "./notifications-harness";

const text = (t: string) => ({ text: t, format: "markdown" });

const approvalCard = {
  type: "AdaptiveCard",
  version: "1.5",
  body: [{ type: "TextBlock", text: "Order 4711 needs your approval" }],
  actions: [{ type: "Action.Execute", title: "Approve", verb: "approve", data: { orderId: 4711 } }],
};

describe("updating one person's copy (PATCH /api/notifications/{id}/recipients/{recipient})", () => {
  let h: NotificationsHarness;
  let changes: NotificationChanges;

  beforeAll(async () => {
    // Pacing off: these tests are about which content each chat ends on, not Teams' rate.
    h = await NotificationsHarness.start({ NotificationEvents: "true" }, { pacing: false });
    changes = new NotificationChanges(h);
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
    h.topic.takeAll();
  });

  /** A request to `users` (named by Teams id), sent to every one of them. */
  async function sentTo(users: readonly SimUser[], message: unknown, extra = {}) {
    const request = h.request({
      recipients: users.map((u) => ({ teamsUserId: u.id })),
      message,
      ...extra,
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    h.topic.takeAll();
    return request;
  }

  const updatedEvents = (): CloudEvent[] =>
    h.topic
      .takeAll()
      .map((m) => m.body as CloudEvent)
      .filter((e) => e.type === "herald.delivery.updated");

  it("changes only that person's chat message, shows it in the status, and publishes one herald.delivery.updated", async () => {
    const users = await seedUsers(h, 3);
    const request = await sentTo(users, text("Order 4711 is waiting"));
    const [ada, ...others] = users as [SimUser, ...SimUser[]];

    // Named by AAD object id, though the request named her by Teams id.
    const answer = await changes.updateRecipient(request.id, ada.aadObjectId, {
      message: text("Approved, order 4711 created"),
    });
    await h.drain();

    expect(answer.status).toBe(202);
    expect(answer.jsonBody).toMatchObject({
      id: request.id,
      recipient: { teamsUserId: ada.id },
      revision: 1,
      override: 1,
    });
    expect(h.sim.chatOf(ada)).toMatchObject([
      { text: "Approved, order 4711 created", edited: true },
    ]);
    for (const user of others)
      expect(h.sim.chatOf(user)).toMatchObject([{ text: "Order 4711 is waiting", edited: false }]);
    const status = await changes.status(request.id);
    const byUser = (u: SimUser) => status.recipients.find((r) => r.teamsUserId === u.id);
    expect(byUser(ada)).toMatchObject({ state: "sent", revision: 1, override: 1 });
    for (const user of others) expect(byUser(user)).not.toHaveProperty("override");
    const events = updatedEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      subject: `teamsUserId:${ada.id}`,
      data: { revision: 1, override: 1 },
    });
  });

  it("answers 404 for a recipient the request does not reach, and changes nothing", async () => {
    const users = await seedUsers(h, 2);
    const request = await sentTo(users, text("hello"));

    const answer = await changes.updateRecipient(request.id, "someone@contoso.com", {
      message: text("not for you"),
    });

    expect(answer.status).toBe(404);
    expect(answer.jsonBody).toMatchObject({ error: "recipient not found", id: request.id });
    expect(h.queue.takeAll()).toEqual([]);
  });

  it("answers 404 for a request the tenant does not have", async () => {
    const answer = await changes.updateRecipient("no-such-request", "29:nobody", {
      message: text("x"),
    });

    expect(answer.status).toBe(404);
    expect(answer.jsonBody).toMatchObject({ error: "not found" });
  });

  it("answers 409 on a recalled request", async () => {
    const [user] = await seedUsers(h, 1);
    const request = await sentTo([user!], text("hello"));
    await changes.recall(request.id);
    await h.drain();

    const answer = await changes.updateRecipient(request.id, user!.id, { message: text("late") });

    expect(answer.status).toBe(409);
    expect(answer.jsonBody).toMatchObject({
      error: "conflict",
      message: expect.any(String) as unknown,
    });
  });

  it("answers 409 for a copy that is not sent yet", async () => {
    const [user] = await seedUsers(h, 1);
    h.sim.failNext("sendActivity", { status: 429, retryAfterSeconds: 1 });
    const request = h.request({ recipients: [{ teamsUserId: user!.id }], message: text("soon") });
    await h.deliver({ body: request, messageId: request.id });

    const answer = await changes.updateRecipient(request.id, user!.id, { message: text("x") });

    expect(answer.status).toBe(409);
    expect(answer.jsonBody).toMatchObject({
      message: expect.stringContaining("not sent yet") as unknown,
    });
  });

  it("answers 400 naming the field for a bad body, a notBefore, or a recipient of no kind", async () => {
    const [user] = await seedUsers(h, 1);
    const request = await sentTo([user!], text("hello"));

    const answers = await Promise.all([
      changes.updateRecipient(request.id, user!.id, { message: { text: 5 } }),
      changes.updateRecipient(request.id, user!.id, { notBefore: "2030-01-01T00:00:00Z" }),
      changes.updateRecipient(request.id, user!.id, {}),
      changes.updateRecipient(request.id, "not-a-recipient", { message: text("x") }),
    ]);

    expect(answers.map((a) => a.status)).toEqual([400, 400, 400, 400]);
    const paths = answers.map((a) =>
      (a.jsonBody as { errors: { path: string }[] }).errors.map((e) => e.path),
    );
    expect(paths[0]).toContain("message.text");
    expect(paths[1]).toContain("notBefore");
    expect(paths[3]).toEqual(["recipient"]);
    expect(h.queue.takeAll()).toEqual([]);
  });

  it("shows the PATCH's content on a copy whose button was clicked before", async () => {
    const [user] = await seedUsers(h, 1);
    const request = await sentTo(
      [user!],
      { adaptiveCard: approvalCard },
      {
        actions: { approve: { text: "Thanks, sent to purchasing." } },
      },
    );
    const [message] = h.sim.messagesToUser(user!);
    const data = (
      message!.activity.attachments as { content: { actions: { data: unknown }[] } }[]
    )[0]!.content.actions[0]!.data;
    await h.postActivityAnswer(h.sim.activities.executeClick(user!, { verb: "approve", data }));
    await h.drain();

    await changes.updateRecipient(request.id, user!.id, {
      message: text("Approved, order 4711 created"),
    });
    await h.drain();

    expect(changes.visible(user!)).toEqual(["Approved, order 4711 created"]);
    expect(h.sim.messagesToUser(user!)[0]?.previousVersions).toHaveLength(2);
  });

  it("replaces the copy once when the same PATCH is retried", async () => {
    const [user] = await seedUsers(h, 1);
    const request = await sentTo([user!], text("hello"));
    const body = { message: text("Approved"), summary: "Order 4711" };

    const first = await changes.updateRecipient(request.id, user!.id, body);
    const again = await changes.updateRecipient(request.id, user!.id, body);
    await h.drain();

    expect(again.jsonBody).toEqual(first.jsonBody);
    expect(h.sim.countRoute("updateActivity", 200)).toBe(1);
    expect(changes.visible(user!)).toEqual(["Approved"]);
    expect(updatedEvents()).toHaveLength(1);
  });

  it("gives each later PATCH of one copy the next sequence, and an event of its own", async () => {
    const [user] = await seedUsers(h, 1);
    const request = await sentTo([user!], text("hello"));

    await changes.updateRecipient(request.id, user!.id, { message: text("first word") });
    await h.drain();
    const second = await changes.updateRecipient(request.id, user!.id, { summary: "later" });
    await h.drain();

    expect(second.jsonBody).toMatchObject({ override: 2 });
    expect(changes.visible(user!)).toEqual(["first word"]);
    const events = updatedEvents();
    expect(events.map((e) => (e.data as { override?: number }).override)).toEqual([1, 2]);
    expect(new Set(events.map((e) => e.id)).size).toBe(2);
  });

  it("lets a later update of the whole request supersede the person's override", async () => {
    const users = await seedUsers(h, 2);
    const request = await sentTo(users, text("rev 1"));
    await changes.updateRecipient(request.id, users[0]!.id, { message: text("just for you") });
    await h.drain();

    await changes.update(request.id, { message: text("rev 2 for everyone") });
    await h.drain();

    for (const user of users) expect(changes.visible(user)).toEqual(["rev 2 for everyone"]);
    const status = await changes.status(request.id);
    expect(status.recipients.map((r) => [r.revision, r.override])).toEqual([
      [2, undefined],
      [2, undefined],
    ]);
  });
});
