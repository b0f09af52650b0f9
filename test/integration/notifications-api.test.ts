import type { NotificationStatus } from "../../shared/notifications/status";
import { dispatches, ofKind } from "../support/memory-queue";
import { API_BASE as BASE, notificationsApiCalls } from "./notifications-api-calls";
import { NotificationsHarness } from "./notifications-harness";

describe("notifications HTTP API", () => {
  let h: NotificationsHarness;
  let api: ReturnType<typeof notificationsApiCalls>;

  beforeAll(async () => {
    h = await NotificationsHarness.start({ MaxDeliveryAttempts: "2" });
    api = notificationsApiCalls(() => h.services);
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  const post = (body: unknown) => api.post(body);
  const get = (id: string, query = "") => api.get(id, query);

  describe("POST /api/notifications", () => {
    it("accepts a valid request with 202, stores it, queues a reference to it on the tenant's session, and schedules its intake check", async () => {
      const body = h.request({ recipients: [{ teamsUserId: "29:someone" }] });
      const response = await post(body);
      expect(response.status).toBe(202);
      expect(response.jsonBody).toEqual({
        id: body.id,
        state: "queued",
        statusUrl: `${BASE}/${body.id}?tenantId=${h.sim.tenantId}`,
      });
      const [queued, ...more] = dispatches(h.queue.waiting);
      expect(more).toEqual([]);
      // The claim check: the queue carries a reference; the recipients are in the store.
      expect(queued).toMatchObject({
        correlationId: body.correlationId,
        sessionId: h.sim.tenantId.toLowerCase(),
        applicationProperties: { heraldKind: "dispatch", requestId: body.id },
        body: { tenantId: body.tenantId, requestId: body.id },
      });
      expect(queued?.scheduledFor).toBeUndefined();
      await expect(h.requests.readBody((await h.requests.get(h.key(body.id)))!)).resolves.toEqual({
        recipients: body.recipients,
      });
      // Scheduled before the row was written: it sends the dispatch again 30 s later.
      const [check] = ofKind(h.queue.waiting, "intake-check");
      expect(check).toMatchObject({
        sessionId: h.sim.tenantId.toLowerCase(),
        body: { tenantId: body.tenantId, requestId: body.id },
      });
      // The intake reads the clock before the queue stamps `sentAt` (real time: a tick apart).
      const delay = check!.scheduledFor!.getTime() - check!.sentAt.getTime();
      expect(delay).toBeGreaterThan(29_000);
      expect(delay).toBeLessThanOrEqual(30_000);
      expect(check!.sequence).toBeLessThan(queued!.sequence);
    });

    it("answers 400 for a right-to-left override in the text, naming the field and the code point, and sends nothing", async () => {
      const user = h.sim.addUser();
      await h.seedUser(user, h.sim.personalConversationId(user));
      const response = await post(
        h.request({
          recipients: [{ teamsUserId: user.id }],
          message: { text: "Your invoice: invoice\u202Egnp.exe" },
        }),
      );
      expect(response.status).toBe(400);
      expect((response.jsonBody as { errors: unknown[] }).errors).toEqual([
        {
          path: "message.text",
          message: expect.stringContaining("U+202E RIGHT-TO-LEFT OVERRIDE") as unknown,
        },
      ]);
      expect(h.queue.waiting).toHaveLength(0);
      await h.drain();
      expect(h.sim.messagesToUser(user)).toHaveLength(0);
    });

    it("answers 400 naming every bad field, and queues nothing", async () => {
      const response = await post({
        schemaVersion: 1,
        id: "x",
        tenantId: "nope",
        recipients: [{}],
        message: { text: "" },
      });
      expect(response.status).toBe(400);
      expect(
        (response.jsonBody as { errors: { path: string }[] }).errors.map((e) => e.path),
      ).toEqual(["tenantId", "recipients.0", "message.text"]);
      expect(h.queue.waiting).toHaveLength(0);
    });

    it("answers 400 for a body that is not JSON", async () => {
      const response = await post("{oops");
      expect(response).toMatchObject({
        status: 400,
        jsonBody: { errors: [{ path: "(body)", message: "must be a JSON object" }] },
      });
    });

    it("answers a replay of the same request with the same 202, and its dispatch keeps the first one's message id", async () => {
      const body = h.request({ recipients: [{ teamsUserId: "29:someone" }] });
      const first = await post(body);
      const [queued] = dispatches(h.queue.takeAll());
      const again = await post(body);
      expect(again).toMatchObject({ status: 202, jsonBody: first.jsonBody as object });
      // The broker's duplicate detection drops the copy: one dispatch of one request.
      expect(dispatches(h.queue.takeAll()).map((m) => m.messageId)).toEqual([queued?.messageId]);
    });

    it("answers 409 for the same id with different content, revealing nothing of the stored request", async () => {
      const body = h.request({ recipients: [{ teamsUserId: "29:someone" }] });
      await post(body);
      h.queue.takeAll();
      const response = await post({ ...body, message: { text: "something else" } });
      expect(response.status).toBe(409);
      expect(response.jsonBody).toEqual({
        error: "conflict",
        message: expect.stringMatching(/already used in this tenant.*different content/) as unknown,
        id: body.id,
      });
      expect(JSON.stringify(response.jsonBody)).not.toContain("29:someone");
      // Its intake check, scheduled before the conflict was known, would only send the stored
      // request's own dispatch again.
      expect(dispatches(h.queue.waiting)).toHaveLength(0);
    });

    it("schedules a request with a future notBefore for that time", async () => {
      const notBefore = new Date(Date.now() + 3_600_000).toISOString();
      const body = h.request({ recipients: [{ teamsUserId: "29:someone" }], notBefore });
      const response = await post(body);
      expect(response).toMatchObject({
        status: 202,
        jsonBody: { state: "scheduled", scheduledFor: notBefore },
      });
      expect(dispatches(h.queue.waiting)[0]?.scheduledFor?.toISOString()).toBe(notBefore);
    });
  });

  describe("GET /api/notifications/{id}", () => {
    it("answers 404 for an unknown id", async () => {
      expect(await get("never-seen")).toMatchObject({
        status: 404,
        jsonBody: { id: "never-seen" },
      });
    });

    it("reports each recipient's state with counts: sent, pending, unreachable, failed, rejected", async () => {
      const [sent, retrying, failing, refused] = [
        h.sim.addUser(),
        h.sim.addUser(),
        h.sim.addUser(),
        h.sim.addUser(),
      ];
      for (const u of [sent, retrying, failing, refused])
        await h.seedUser(u, h.sim.personalConversationId(u));
      h.sim.failNext("sendActivity", { status: 429, retryAfterSeconds: 5, user: retrying });
      h.sim.failNext("sendActivity", { status: 500, user: failing });
      h.sim.failNext("sendActivity", { status: 413, code: "MessageSizeTooBig", user: refused });
      const body = h.request({
        recipients: [
          { teamsUserId: sent.id },
          { teamsUserId: retrying.id },
          { teamsUserId: failing.id },
          { teamsUserId: refused.id },
          { aadObjectId: "00000000-0000-0000-0000-000000000001" },
        ],
      });
      expect((await post(body)).status).toBe(202);
      await h.deliverQueued(dispatches(h.queue.takeAll())[0]!); // the request itself: fan-out
      for (const item of h.queue.takeAll()) await h.deliverQueued(item); // first attempts only

      const response = await get(body.id);
      expect(response.status).toBe(200);
      const status = response.jsonBody as NotificationStatus;
      expect(status).toMatchObject({
        id: body.id,
        state: "in-progress",
        correlationId: body.correlationId,
        counts: { total: 5, sent: 1, pending: 1, unreachable: 1, failed: 1, rejected: 1 },
        recipientsTruncated: false,
      });
      const stateOf = (id: string) => status.recipients.find((r) => r.recipient.teamsUserId === id);
      expect(stateOf(sent.id)).toMatchObject({ state: "sent", attempts: 1 });
      expect(stateOf(sent.id)?.activityId).toBe(h.sim.messagesToUser(sent)[0]!.id);
      expect(stateOf(retrying.id)).toMatchObject({
        state: "pending",
        lastError: expect.stringContaining("429") as unknown,
      });
      expect(stateOf(retrying.id)?.nextAttemptAt).toBeDefined();
      expect(stateOf(failing.id)).toMatchObject({
        state: "failed",
        lastError: expect.stringContaining("500") as unknown,
      });
      expect(stateOf(refused.id)).toMatchObject({
        state: "rejected",
        lastError: expect.stringContaining("MessageSizeTooBig") as unknown,
      });
      expect(status.recipients.find((r) => r.recipient.aadObjectId !== undefined)).toMatchObject({
        state: "unreachable",
        lastError: expect.stringContaining("no user reference") as unknown,
      });

      // Filtered by state; and "completed" once the retry went through.
      const failed = (await get(body.id, "?state=failed")).jsonBody as NotificationStatus;
      expect(failed.recipients.map((r) => r.recipient.teamsUserId)).toEqual([failing.id]);
      await h.drain();
      const done = (await get(body.id)).jsonBody as NotificationStatus;
      expect(done).toMatchObject({ state: "completed", counts: { sent: 2, pending: 0 } });
    });

    it("reports a rejected queue request with its field errors", async () => {
      await h.deliver({
        body: { schemaVersion: 1, id: "rejected-via-queue", tenantId: "x" },
        messageId: "rejected-via-queue",
      });
      const response = await get("rejected-via-queue");
      expect(response).toMatchObject({
        status: 200,
        jsonBody: {
          id: "rejected-via-queue",
          state: "rejected",
          counts: { total: 0 },
          errors: expect.arrayContaining([
            { path: "tenantId", message: "must be a GUID" },
          ]) as unknown,
        },
      });
    });

    it("answers 400 for a malformed id or query", async () => {
      expect((await get("a%2Fb")).status).toBe(400);
      expect((await get("abc", "?state=lost")).status).toBe(400);
      expect((await get("abc", "?limit=-1")).status).toBe(400);
    });
  });
});
