import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { run } from "../../shared/cli/cli";
import { NotificationClient } from "../../shared/client/notification-client";
import type { CloudEvent } from "../../shared/model/cloud-event";
import { LocalTopic } from "../../shared/queue/local-topic";
import type { SimUser } from "../simulator";
import {
  type NotificationsApiServer,
  startNotificationsApiServer,
} from "../support/notifications-api-server";
import {
  startWebhookReceiver,
  verifyStandardWebhook,
  type WebhookReceiver,
} from "../support/webhook-receiver";
import { NotificationsHarness } from "./notifications-harness";

/**
 * Delivery events as a LOB app receives them: through the real handlers, Azurite, the Teams
 * simulator, the local broker's topic (a subscription filtered to the app's tenant), a webhook
 * receiver on loopback and the pull endpoint behind the HTTP API.
 */
describe("delivery events", () => {
  let directory: string;
  let topic: LocalTopic;
  let receiver: WebhookReceiver;
  let api: NotificationsApiServer;
  let h: NotificationsHarness;
  const OTHER_TENANT = "5e2c7a9d-3b1f-4c8e-a6d4-9f0b2e7c1a35";

  beforeEach(async () => {
    directory = mkdtempSync(join(tmpdir(), "herald-events-"));
    topic = new LocalTopic({ directory });
    receiver = await startWebhookReceiver();
    h = await NotificationsHarness.start(
      { EventWebhookUrl: receiver.url, EventWebhookSecret: receiver.secret },
      { events: topic },
    );
    receiver.clock = h.clock.now;
    topic.subscribe("lob-app", `tenantId = '${h.sim.tenantId}'`);
    topic.subscribe("other-lob-app", `tenantId IN ('${OTHER_TENANT}')`);
    api = await startNotificationsApiServer({
      services: { notifications: h.services, queue: h.queue },
    });
  });
  afterEach(async () => {
    await api.close();
    await h.close();
    await receiver.close();
    topic.close();
    rmSync(directory, { recursive: true, force: true });
  });

  /** What the app's subscription holds now, taken off it. */
  function fromTopic(name = "lob-app"): CloudEvent[] {
    const subscription = topic.subscription(name);
    const received = subscription.receive(1_000);
    for (const message of received) subscription.complete(message);
    return received.map((m) => m.body as CloudEvent);
  }

  /** What the webhook answered 2xx to, each signature checked, once per `webhook-id`. */
  function fromWebhook(): CloudEvent[] {
    const seen = new Set<string>();
    const events: CloudEvent[] = [];
    for (const post of receiver.posts) {
      const nowSeconds = Math.floor(post.receivedAt.getTime() / 1000);
      const verdict = verifyStandardWebhook(receiver.secret, post.headers, post.body, nowSeconds);
      expect(verdict).toEqual({ ok: true, id: expect.any(String) as unknown });
      const event = JSON.parse(post.body) as CloudEvent;
      expect(post.headers["webhook-id"]).toBe(event.id);
      expect(post.headers["content-type"]).toBe("application/cloudevents+json");
      if (post.status < 200 || post.status >= 300 || seen.has(event.id)) continue;
      seen.add(event.id);
      events.push(event);
    }
    return events;
  }

  async function fromPull(id: string): Promise<CloudEvent[]> {
    const client = new NotificationClient({ endpoint: api.endpoint });
    const events: CloudEvent[] = [];
    for await (const event of client.followEvents(id, h.sim.tenantId, { timeoutMs: 0 }))
      events.push(event);
    return events;
  }

  /** Each stream's event types in order: the request's own (`request`) and each recipient's. */
  function streams(events: readonly CloudEvent[]): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const e of events) (out[e.subject ?? "request"] ??= []).push(e.type);
    return out;
  }

  const subjectOf = (user: SimUser) => `aadObjectId:${user.aadObjectId.toLowerCase()}`;

  async function seeded(): Promise<SimUser> {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    return user;
  }

  it("tells the app each recipient's outcome in order, then one completed with the counts, on the topic, the webhook and the pull endpoint alike", async () => {
    const known = await seeded();
    const unknown = h.sim.addUser();
    const blocked = await seeded();
    h.sim.blockUser(blocked, { code: "ConversationBlockedByUser" });
    const request = h.request({
      recipients: [
        { aadObjectId: known.aadObjectId },
        { aadObjectId: unknown.aadObjectId },
        { aadObjectId: blocked.aadObjectId },
      ],
    });

    await h.deliver({ body: request, messageId: request.id });
    await h.drain();

    const topicEvents = fromTopic();
    const expected = {
      request: ["herald.notification.accepted", "herald.notification.completed"],
      [subjectOf(known)]: ["herald.delivery.sent"],
      [subjectOf(unknown)]: ["herald.delivery.unreachable"],
      [subjectOf(blocked)]: ["herald.delivery.unreachable"],
    };
    expect(streams(topicEvents)).toEqual(expected);
    // `completed` comes last: after every recipient's outcome.
    expect(topicEvents.at(-1)).toMatchObject({
      specversion: "1.0",
      type: "herald.notification.completed",
      source: `/tenants/${h.sim.tenantId.toLowerCase()}/notifications/${request.id}`,
      correlationid: request.correlationId,
      data: {
        requestId: request.id,
        state: "completed",
        counts: {
          total: 3,
          pending: 0,
          sent: 1,
          unreachable: 2,
          failed: 0,
          rejected: 0,
          duplicate: 0,
          read: 0,
        },
      },
    });
    const sent = topicEvents.find((e) => e.type === "herald.delivery.sent")!;
    expect(sent.data).toMatchObject({
      state: "sent",
      recipient: { aadObjectId: known.aadObjectId },
      activityId: expect.any(String) as unknown,
      attempts: 1,
    });
    const blockedEvent = topicEvents.find((e) => e.subject === subjectOf(blocked))!;
    expect(blockedEvent.data).toMatchObject({
      state: "unreachable",
      lastError: expect.any(String) as unknown,
    });
    // The content never travels in an event.
    expect(JSON.stringify(topicEvents)).not.toContain("order **42**");

    // The same events, with the same ids, on the webhook and the pull endpoint.
    const ids = (events: readonly CloudEvent[]) => events.map((e) => e.id).sort();
    const webhookEvents = fromWebhook();
    expect(streams(webhookEvents)).toEqual(expected);
    expect(ids(webhookEvents)).toEqual(ids(topicEvents));
    const pulled = await fromPull(request.id);
    expect(streams(pulled)).toEqual(expected);
    expect(ids(pulled)).toEqual(ids(topicEvents));
    expect(pulled.at(0)?.type).toBe("herald.notification.accepted");
    expect(pulled.at(-1)?.type).toBe("herald.notification.completed");

    // Another tenant's app sees none of it.
    expect(fromTopic("other-lob-app")).toEqual([]);
  });

  it("publishes one read event for the messages up to a read receipt's id, none for later ones, and none twice", async () => {
    const user = await seeded();
    const first = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    const second = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    await h.deliver({ body: first, messageId: first.id });
    await h.deliver({ body: second, messageId: second.id });
    await h.drain();
    const activityOf = (id: string) =>
      fromTopicSoFar.find((e) => e.type === "herald.delivery.sent" && sourceIs(e, id))?.data
        .activityId as string;
    const sourceIs = (e: CloudEvent, id: string) => e.source.endsWith(`/notifications/${id}`);
    const fromTopicSoFar = fromTopic();
    // A sole recipient's final write carries its outcome and the request's `completed`.
    expect(fromTopicSoFar.map((e) => e.type)).toEqual([
      "herald.notification.accepted",
      "herald.delivery.sent",
      "herald.notification.completed",
      "herald.notification.accepted",
      "herald.delivery.sent",
      "herald.notification.completed",
    ]);
    const firstActivity = activityOf(first.id);
    const secondActivity = activityOf(second.id);
    expect(Number(secondActivity)).toBeGreaterThan(Number(firstActivity));

    expect(await h.postActivity(h.sim.activities.readReceipt(user, firstActivity))).toBe(200);
    await h.drain();
    const read = fromTopic();
    expect(read).toHaveLength(1);
    expect(read[0]).toMatchObject({
      type: "herald.delivery.read",
      subject: subjectOf(user),
      data: { requestId: first.id, state: "sent", readAt: expect.any(String) as unknown },
    });
    expect((await h.services.status.get(first.id))?.counts).toMatchObject({ sent: 1, read: 1 });
    expect((await h.services.status.get(second.id))?.counts).toMatchObject({ sent: 1, read: 0 });

    // A later receipt reads the second; the same receipt again reads nothing more.
    await h.postActivity(h.sim.activities.readReceipt(user, secondActivity));
    await h.drain();
    await h.postActivity(h.sim.activities.readReceipt(user, secondActivity));
    await h.drain();
    const later = fromTopic();
    expect(later.map((e) => [e.type, (e.data as { requestId: string }).requestId])).toEqual([
      ["herald.delivery.read", second.id],
    ]);
    const status = await h.services.status.get(second.id);
    expect(status?.recipients[0]?.readAt).toBe((later[0]?.data as { readAt: string }).readAt);

    // The pull endpoint shows the read after `completed`, and the webhook got it too.
    expect((await fromPull(first.id)).map((e) => e.type)).toEqual([
      "herald.notification.accepted",
      "herald.delivery.sent",
      "herald.notification.completed",
      "herald.delivery.read",
    ]);
    expect(fromWebhook().filter((e) => e.type === "herald.delivery.read")).toHaveLength(2);
  });

  /** `herald …` in-process against the API server; a virtual clock only its sleeps move. */
  async function herald(args: string[], whileWaiting?: () => Promise<unknown>) {
    let stdout = "";
    let stderr = "";
    let clock = 0;
    const code = await run([...args, "--endpoint", api.endpoint], {
      stdout: { write: (chunk: string) => (stdout += chunk) },
      stderr: { write: (chunk: string) => (stderr += chunk), isTTY: false, columns: 100 },
      env: {},
      clientOptions: { httpMaxTries: 1 },
      now: () => clock,
      sleep: async (ms) => {
        clock += ms;
        await whileWaiting?.();
      },
    });
    return { code, stdout, stderr };
  }

  it("prints a request's events with herald events, following them as they happen, and exits as herald status does", async () => {
    const known = await seeded();
    const blocked = await seeded();
    h.sim.blockUser(blocked);
    const request = h.request({
      recipients: [{ aadObjectId: known.aadObjectId }, { aadObjectId: blocked.aadObjectId }],
    });
    await h.deliver({ body: request, messageId: request.id });

    // Not final yet: the deliveries are still on the queue. --follow waits while they run.
    const now = await herald(["events", request.id, "--tenant", h.sim.tenantId, "--json"]);
    expect(now.code).toBe(6);
    expect(
      now.stdout
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as CloudEvent).type),
    ).toEqual(["herald.notification.accepted"]);
    let drained = false;
    const followed = await herald(
      ["events", request.id, "--tenant", h.sim.tenantId, "--follow", "60", "--json"],
      async () => {
        if (drained) return;
        drained = true;
        await h.drain();
      },
    );
    const lines = followed.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as CloudEvent);
    expect(streams(lines)).toEqual({
      request: ["herald.notification.accepted", "herald.notification.completed"],
      [subjectOf(known)]: ["herald.delivery.sent"],
      [subjectOf(blocked)]: ["herald.delivery.unreachable"],
    });
    // Final, but the blocked user was not reached: herald status's 5.
    expect(followed.code).toBe(5);

    const text = await herald(["events", request.id, "--tenant", h.sim.tenantId]);
    expect(text.code).toBe(5);
    expect(text.stdout).toContain("herald.notification.completed");
    expect(text.stdout).toContain("2 recipients: 1 sent, 1 unreachable");
    expect(text.stdout).not.toContain("order **42**");
  });

  it("delivers the webhook's events afterwards, in order, when the receiver was down for three attempts", async () => {
    const user = await seeded();
    receiver.answerNext(3, 503);
    const request = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });

    await h.deliver({ body: request, messageId: request.id });
    await h.drain();

    expect(receiver.posts.filter((p) => p.status === 503)).toHaveLength(3);
    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    const delivered = fromWebhook();
    expect(streams(delivered)).toEqual({
      request: ["herald.notification.accepted", "herald.notification.completed"],
      [subjectOf(user)]: ["herald.delivery.sent"],
    });
    // `completed` (on the recipient's row, posted after its `sent`) waited for `accepted`.
    expect(delivered.at(-1)?.type).toBe("herald.notification.completed");
    // Retried with the same id: the receiver can tell a retry from a new event.
    const failedIds = receiver.posts
      .filter((p) => p.status === 503)
      .map((p) => p.headers["webhook-id"]);
    for (const id of failedIds) expect(delivered.map((e) => e.id)).toContain(id);
    expect(h.logs.some((l) => l.text.includes("Webhook failed; retry scheduled"))).toBe(true);
  });

  it("gives up after eight attempts, throwing so that the broker dead-letters the work item for the operator", async () => {
    const user = await seeded();
    receiver.answerNext(1_000, 500);
    const request = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    await h.deliver({ body: request, messageId: request.id });
    const started = h.clock.now().getTime();

    await expect(h.drain(8, 40)).rejects.toThrow(/webhook failed 8 times: answered 500/);

    // Each attempt posted the same event (same webhook-id), the retries hours apart at the end.
    const byId = new Map<string, number>();
    for (const post of receiver.posts)
      byId.set(post.headers["webhook-id"]!, (byId.get(post.headers["webhook-id"]!) ?? 0) + 1);
    expect(Math.max(...byId.values())).toBe(8);
    expect(h.clock.now().getTime() - started).toBeGreaterThan(20 * 3_600_000);
    expect(h.logs.some((l) => l.level === "error" && l.text.includes("dead-letter"))).toBe(true);
  });

  it("turns the webhook off when the receiver answers 410 Gone, and says so in an error", async () => {
    const user = await seeded();
    receiver.answerNext(1, 410);
    const first = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    await h.deliver({ body: first, messageId: first.id });
    await h.drain();
    const postsThen = receiver.posts.length;
    expect(receiver.posts[0]?.status).toBe(410);

    const second = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    await h.deliver({ body: second, messageId: second.id });
    await h.drain();

    expect(receiver.posts.length).toBe(postsThen);
    expect(postsThen).toBeLessThanOrEqual(2);
    expect(h.logs.some((l) => l.level === "error" && l.text.includes("410 Gone"))).toBe(true);
    // The topic is not the webhook: it still has every event.
    expect(fromTopic().filter((e) => e.type === "herald.notification.completed")).toHaveLength(2);
  });
});
