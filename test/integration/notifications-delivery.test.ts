import { HttpRequest, InvocationContext } from "@azure/functions";

import {
  BotbuilderConnector,
  botFrameworkAuthentication,
} from "../../shared/connector/botbuilder-connector";
import type { TeamsConnector } from "../../shared/connector/teams-connector";
import { createNotificationsApi } from "../../shared/notifications/http-api";
import type { NotificationStatus } from "../../shared/notifications/status";
import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { NotificationsHarness } from "./notifications-harness";

describe("notification delivery (Service Bus trigger, Azurite, Teams simulator)", () => {
  let h: NotificationsHarness;

  beforeAll(async () => {
    h = await NotificationsHarness.start({ MaxDeliveryAttempts: "3" });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  const rowOf = async (requestId: string, key: string) => h.ledger.get(h.key(requestId), key);

  it("creates the 1:1 conversation for the first notification, stores its id, and reuses it for the second", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user);
    const first = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    await h.deliver({ body: first, messageId: first.id });

    const reference = await h.users.findByTeamsUserId(h.sim.tenantId, user.id);
    expect(reference?.conversationId).toBe(h.sim.personalConversationId(user));

    const second = h.request({
      recipients: [{ userPrincipalName: user.userPrincipalName }],
      message: { text: "again" },
    });
    await h.deliver({ body: second, messageId: second.id });

    expect(h.sim.countRoute("createConversation")).toBe(1);
    expect(h.sim.messagesToUser(user).map((a) => a.text)).toEqual([
      "Your order **42** shipped",
      "again",
    ]);
    const row = await rowOf(first.id, `aadObjectId:${user.aadObjectId.toLowerCase()}`);
    expect(row).toMatchObject({
      state: "sent",
      attempts: 1,
      conversationId: h.sim.personalConversationId(user),
    });
    expect(row?.activityId).toBe(h.sim.messagesToUser(user)[0]!.id);
    expect(h.sim.messagesToUser(user)[0]!.activity).toMatchObject({
      type: "message",
      textFormat: "markdown",
    });
  });

  it("sends once when the same request is delivered three times", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    for (const deliveryCount of [1, 2, 3])
      await h.deliver({ body: request, messageId: request.id, deliveryCount });

    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    expect(await rowOf(request.id, `teamsUserId:${user.id}`)).toMatchObject({
      state: "sent",
      attempts: 1,
    });
    expect(h.queue.waiting).toHaveLength(0);
  });

  it("sends once when the same fanned-out delivery work item is delivered three times", async () => {
    const users = [h.sim.addUser(), h.sim.addUser()];
    for (const u of users) await h.seedUser(u, h.sim.personalConversationId(u));
    const request = h.request({ recipients: users.map((u) => ({ teamsUserId: u.id })) });
    await h.deliver({ body: request, messageId: request.id });
    const items = h.queue.takeAll("delivery");
    expect(items).toHaveLength(2);
    for (const deliveryCount of [1, 2, 3])
      for (const item of items)
        await h.deliverWork({
          body: item.body,
          messageId: item.messageId!,
          deliveryCount,
          applicationProperties: item.applicationProperties!,
        });

    for (const u of users) expect(h.sim.messagesToUser(u)).toHaveLength(1);
    expect(h.queue.waitingOf("delivery")).toHaveLength(0);
  });

  it("reschedules a 429 with Retry-After 2 s no earlier than 2 s later, then succeeds", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    h.sim.failNext("sendActivity", { status: 429, retryAfterSeconds: 2 });
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    const before = h.clock.now().getTime();
    await h.deliver({ body: request, messageId: request.id });

    const [retry] = h.queue.waiting;
    expect(h.queue.waiting).toHaveLength(1);
    expect(retry!.scheduledFor!.getTime() - before).toBeGreaterThanOrEqual(2_000);
    expect(retry!.applicationProperties).toMatchObject({
      [WORK_KIND_PROPERTY]: "delivery",
      attempt: 2,
    });
    expect(retry!.body).toMatchObject({ requestId: request.id, attempt: 2 });
    expect(await rowOf(request.id, `teamsUserId:${user.id}`)).toMatchObject({
      state: "pending",
      lastStatus: 429,
      nextAttemptAt: retry!.scheduledFor!.toISOString(),
    });
    expect(h.sim.messagesToUser(user)).toHaveLength(0);

    await h.drain();
    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    expect(await rowOf(request.id, `teamsUserId:${user.id}`)).toMatchObject({
      state: "sent",
      attempts: 2,
    });
    expect(h.logs.some((l) => l.text.includes("metric notifications.throttled"))).toBe(true);
  });

  it("retries a 503 twice, each retry carrying its attempt, then succeeds", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    h.sim.failNext("sendActivity", { status: 503, times: 2 });
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: request, messageId: request.id });
    const retries = await h.drain();

    expect(retries.map((m) => m.applicationProperties?.attempt)).toEqual([2, 3]);
    expect(h.sim.countRoute("sendActivity")).toBe(3);
    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    expect(await rowOf(request.id, `teamsUserId:${user.id}`)).toMatchObject({
      state: "sent",
      attempts: 3,
    });
  });

  it("retries a send Teams answered with a body Herald cannot read, then delivers once", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    h.sim.failNext("sendActivity", { status: 200, rawBody: "<html>gateway</html>" });
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: request, messageId: request.id });

    const pending = await rowOf(request.id, `teamsUserId:${user.id}`);
    expect(pending).toMatchObject({ state: "pending", attempts: 1, lastStatus: 200 });
    expect(pending?.lastError).toMatch(/UnreadableAnswer/);
    expect(pending?.nextAttemptAt).toBeDefined();
    await h.drain();
    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    expect(await rowOf(request.id, `teamsUserId:${user.id}`)).toMatchObject({
      state: "sent",
      attempts: 2,
    });
  });

  it("never stores a conversation id Teams' create answer did not readably give", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user);
    h.sim.failNext("createConversation", {
      status: 201,
      rawBody: "{}",
      contentType: "application/json",
    });
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: request, messageId: request.id });

    expect(
      (await h.users.findByTeamsUserId(h.sim.tenantId, user.id))?.conversationId,
    ).toBeUndefined();
    await h.drain();
    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    expect((await h.users.findByTeamsUserId(h.sim.tenantId, user.id))?.conversationId).toBe(
      h.sim.personalConversationId(user),
    );
  });

  it("records failed with the last error once the attempts are used up", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    h.sim.failNext("sendActivity", { status: 503, times: 10 });
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();

    expect(h.sim.countRoute("sendActivity")).toBe(3);
    const row = await rowOf(request.id, `teamsUserId:${user.id}`);
    expect(row).toMatchObject({ state: "failed", attempts: 3, lastStatus: 503 });
    expect(row?.lastError).toMatch(/HTTP 503 .*gave up after 3 attempts/);
  });

  it("marks the user unreachable on 403 and never retries", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    h.sim.blockUser(user, { code: "ConversationBlockedByUser" });
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: request, messageId: request.id });

    expect(h.queue.waiting).toHaveLength(0);
    expect(await rowOf(request.id, `teamsUserId:${user.id}`)).toMatchObject({
      state: "unreachable",
      lastStatus: 403,
      lastError: expect.stringContaining("ConversationBlockedByUser") as unknown,
    });
    const reference = await h.users.findByTeamsUserId(h.sim.tenantId, user.id);
    expect(reference).toMatchObject({
      status: "unreachable",
      statusReason: "ConversationBlockedByUser",
    });
    expect(reference?.conversationId).toBeUndefined();

    // The next request to that user does not call Teams at all.
    const calls = h.sim.requests.length;
    const next = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: next, messageId: next.id });
    expect(h.sim.requests.length).toBe(calls);
    expect(await rowOf(next.id, `teamsUserId:${user.id}`)).toMatchObject({
      state: "unreachable",
      lastError: expect.stringContaining("user reference is unreachable") as unknown,
    });
  });

  it("creates the conversation again once when the stored one is gone (404), then sends", async () => {
    const user = h.sim.addUser();
    const stale = h.sim.personalConversationId(user);
    await h.seedUser(user, stale);
    h.sim.deletePersonalConversation(user);
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: request, messageId: request.id });

    const fresh = h.sim.personalConversationId(user);
    expect(fresh).not.toBe(stale);
    expect(h.sim.countRoute("sendActivity", 404)).toBe(1);
    expect(h.sim.countRoute("createConversation")).toBe(1);
    expect(h.sim.activitiesIn(fresh)).toHaveLength(1);
    expect((await h.users.findByTeamsUserId(h.sim.tenantId, user.id))?.conversationId).toBe(fresh);
    expect(await rowOf(request.id, `teamsUserId:${user.id}`)).toMatchObject({
      state: "sent",
      conversationId: fresh,
    });
  });

  it("recreates only once: a second 404 right after creating is a failure, not a loop", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    h.sim.failNext("sendActivity", { status: 404, code: "ConversationNotFound", times: 2 });
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: request, messageId: request.id });

    expect(h.sim.countRoute("createConversation")).toBe(1);
    expect(h.sim.countRoute("sendActivity")).toBe(2);
    expect(await rowOf(request.id, `teamsUserId:${user.id}`)).toMatchObject({ state: "failed" });
    expect(h.queue.waiting).toHaveLength(0);
  });

  it("records a 500 as failed and a 400 as rejected, without retrying either", async () => {
    const [a, b] = [h.sim.addUser(), h.sim.addUser()];
    for (const u of [a, b]) await h.seedUser(u, h.sim.personalConversationId(u));
    h.sim.failNext("sendActivity", { status: 500, user: a });
    h.sim.failNext("sendActivity", { status: 400, user: b });
    const ra = h.request({ recipients: [{ teamsUserId: a.id }] });
    const rb = h.request({ recipients: [{ teamsUserId: b.id }] });
    await h.deliver({ body: ra, messageId: ra.id });
    await h.deliver({ body: rb, messageId: rb.id });

    expect(await rowOf(ra.id, `teamsUserId:${a.id}`)).toMatchObject({
      state: "failed",
      lastStatus: 500,
    });
    expect(await rowOf(rb.id, `teamsUserId:${b.id}`)).toMatchObject({
      state: "rejected",
      lastStatus: 400,
    });
    expect(h.queue.waiting).toHaveLength(0);
  });

  it("records an unknown recipient as unreachable with the reason, without calling Teams", async () => {
    const request = h.request({ recipients: [{ userPrincipalName: "nobody@contoso.com" }] });
    await h.deliver({ body: request, messageId: request.id });

    expect(h.sim.requests).toHaveLength(0);
    expect(h.queue.waiting).toHaveLength(0);
    expect(await rowOf(request.id, "userPrincipalName:nobody@contoso.com")).toMatchObject({
      state: "unreachable",
      lastError: expect.stringMatching(
        /no user reference for userPrincipalName.*ProactiveInstall is off/,
      ) as unknown,
    });
  });

  it("records an invalid request as rejected under its id, naming the fields, without retrying", async () => {
    const body = {
      schemaVersion: 1,
      id: "bad-request-1",
      tenantId: "contoso",
      recipients: [],
      message: {},
    };
    await h.deliver({ body, messageId: "bad-request-1" });

    expect(h.queue.waiting).toHaveLength(0);
    const stored = await h.requests.get({ tenantId: "", id: "bad-request-1" });
    expect(stored?.state).toBe("rejected");
    expect(stored?.errors?.map((e) => e.path)).toEqual(["tenantId", "recipients", "message"]);
    // Redelivery changes nothing and does not throw.
    await h.deliver({ body, messageId: "bad-request-1", deliveryCount: 2 });
    expect((await h.requests.get({ tenantId: "", id: "bad-request-1" }))?.state).toBe("rejected");
  });

  it("records a request without a usable id under the Service Bus message id", async () => {
    await h.deliver({ body: "not json at all", messageId: "sb-message-7" });
    expect(await h.requests.get({ tenantId: "", id: "sb-message-7" })).toMatchObject({
      state: "rejected",
      errors: [{ path: "(body)", message: expect.stringContaining("expected object") as unknown }],
    });
  });

  it("puts the request id and correlation id on every log line of a request", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user);
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    h.logs.length = 0;
    await h.deliver({ body: request, messageId: request.id });

    expect(h.logs.length).toBeGreaterThan(0);
    for (const line of h.logs) {
      expect(line.text).toContain(`"requestId":"${request.id}"`);
      expect(line.text).toContain(`"correlationId":"${request.correlationId as string}"`);
    }
    expect(h.logs.some((l) => l.text.startsWith("metric notifications.sent"))).toBe(true);
    expect(h.logs.some((l) => l.text.includes("Your order"))).toBe(false);
  });
});

describe("notification delivery when something unexpected breaks", () => {
  let h: NotificationsHarness;
  /** Sends still to fail with a non-HTTP error (a bug, not a Teams answer). */
  let brokenSends = 0;

  beforeAll(async () => {
    const real: { connector?: TeamsConnector } = {};
    const connector: TeamsConnector = {
      createPersonalConversation: (input) => real.connector!.createPersonalConversation(input),
      updateActivity: (input) => real.connector!.updateActivity(input),
      deleteActivity: (input) => real.connector!.deleteActivity(input),
      getMember: (input) => real.connector!.getMember(input),
      sendActivity: (input) => {
        if (brokenSends > 0) {
          brokenSends -= 1;
          return Promise.reject(new TypeError("simulated bug"));
        }
        return real.connector!.sendActivity(input);
      },
    };
    // The queue dead-letters after 3 deliveries (Bicep ties maxDeliveryCount to this setting).
    h = await NotificationsHarness.start({ MaxDeliveryAttempts: "3" }, { connector });
    real.connector = new BotbuilderConnector(botFrameworkAuthentication(h.config), undefined, {
      botId: h.sim.botId,
    });
  });
  afterAll(() => h.close());

  it("rethrows for the broker to redeliver, shows the error in the ledger, and delivers on redelivery", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    brokenSends = 1;
    await expect(
      h.deliver({ body: request, messageId: request.id, deliveryCount: 1 }),
    ).rejects.toThrow("simulated bug");

    const row = await h.ledger.get(h.key(request.id), `teamsUserId:${user.id}`);
    expect(row).toMatchObject({ state: "sending", deliveryCount: 1 });
    expect(row?.lastError).toMatch(/unexpected: simulated bug \(delivery 1\)/);

    // The broker redelivers the same message: it recognises its own claim and sends.
    await h.deliver({ body: request, messageId: request.id, deliveryCount: 2 });
    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    expect(await h.ledger.get(h.key(request.id), `teamsUserId:${user.id}`)).toMatchObject({
      state: "sent",
      deliveryCount: 2,
      attempts: 2,
    });
  });

  it("records failed on the last delivery of a message that keeps failing unexpectedly, before it is dead-lettered", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    const api = createNotificationsApi(() => h.services);
    const status = async () => {
      const response = await api.status(
        new HttpRequest({
          method: "GET",
          url: `https://herald.example/api/notifications/${request.id}`,
          params: { id: request.id },
        }),
        new InvocationContext({ logHandler: () => {} }),
      );
      expect(response.status).toBe(200);
      return response.jsonBody as NotificationStatus;
    };
    brokenSends = 3;

    for (const deliveryCount of [1, 2]) {
      await expect(
        h.deliver({ body: request, messageId: request.id, deliveryCount }),
      ).rejects.toThrow("simulated bug");
      const row = await h.ledger.get(h.key(request.id), `teamsUserId:${user.id}`);
      expect(row?.state).toBe("sending");
      expect(row?.lastError).toBe(`unexpected: simulated bug (delivery ${deliveryCount})`);
      expect(await status()).toMatchObject({
        state: "in-progress",
        counts: { total: 1, pending: 1, failed: 0 },
        recipients: [{ state: "pending", lastError: row?.lastError }],
      });
    }

    // The broker's last delivery (maxDeliveryCount 3): still rethrown, so it is dead-lettered,
    // but the ledger and the status API now show the final outcome.
    await expect(
      h.deliver({ body: request, messageId: request.id, deliveryCount: 3 }),
    ).rejects.toThrow("simulated bug");
    expect(await h.ledger.get(h.key(request.id), `teamsUserId:${user.id}`)).toMatchObject({
      state: "failed",
      deliveryCount: 3,
      lastError: "unexpected: simulated bug (delivery 3, the last: dead-lettered)",
    });
    const final = await status();
    expect(final).toMatchObject({
      state: "completed",
      counts: { total: 1, pending: 0, failed: 1 },
      recipients: [
        { state: "failed", lastError: expect.stringContaining("dead-lettered") as unknown },
      ],
    });
    expect(final.lastError).toContain("dead-lettered");
    expect(h.sim.messagesToUser(user)).toHaveLength(0);
  });

  it("records failed on the last delivery of a fanned-out delivery work item, leaving the other recipients alone", async () => {
    const [ok, broken] = [h.sim.addUser(), h.sim.addUser()];
    for (const u of [ok, broken]) await h.seedUser(u, h.sim.personalConversationId(u));
    const request = h.request({ recipients: [{ teamsUserId: ok.id }, { teamsUserId: broken.id }] });
    await h.deliver({ body: request, messageId: request.id });
    const items = h.queue.takeAll();
    const itemFor = (u: typeof ok) => items.find((m) => JSON.stringify(m.body).includes(u.id))!;
    await h.deliverQueued(itemFor(ok));

    brokenSends = 3;
    for (const deliveryCount of [1, 2, 3]) {
      await expect(
        h.deliverWork({
          body: itemFor(broken).body,
          messageId: itemFor(broken).messageId!,
          deliveryCount,
          applicationProperties: itemFor(broken).applicationProperties!,
        }),
      ).rejects.toThrow("simulated bug");
      expect((await h.ledger.get(h.key(request.id), `teamsUserId:${broken.id}`))?.state).toBe(
        deliveryCount < 3 ? "sending" : "failed",
      );
    }
    expect(await h.services.status.get(request.id)).toMatchObject({
      state: "completed",
      counts: { total: 2, sent: 1, failed: 1, pending: 0 },
    });
  });

  it("lets a live claim of another message finish instead of sending a second copy", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    brokenSends = 1;
    await expect(h.deliver({ body: request, messageId: "copy-a" })).rejects.toThrow();
    const row = await h.ledger.get(h.key(request.id), `teamsUserId:${user.id}`);

    // A different message for the same request and recipient (a duplicate request copy): it
    // looks again later, sooner while the claim is young, and sends nothing meanwhile.
    await h.deliver({ body: request, messageId: "copy-b" });
    const [first] = h.queue.takeAll();
    expect(first?.scheduledFor?.getTime()).toBeLessThan(Date.parse(row!.claimExpiresAt!));
    h.clock.advanceTo(first!.scheduledFor!);
    await h.deliverQueued(first!);
    const [second] = h.queue.takeAll();
    expect(second?.scheduledFor?.getTime()).toBeGreaterThan(first!.scheduledFor!.getTime());
    expect(h.sim.messagesToUser(user)).toHaveLength(0);

    // Once the claim has expired, the copy takes over: one message.
    h.clock.advanceTo(new Date(Date.parse(row!.claimExpiresAt!) + 1_000));
    await h.deliverQueued(second!);
    expect(h.sim.messagesToUser(user)).toHaveLength(1);
  });
});
