import { randomUUID } from "node:crypto";

import type { SimUser } from "../simulator";
import { notificationsApiCalls } from "./notifications-api-calls";
import { NotificationsHarness } from "./notifications-harness";

/** Text of every message a user received in their 1:1 chat. */
function received(h: NotificationsHarness, user: SimUser): string[] {
  return h.sim.messagesToUser(user).map((a) => String(a.activity.text));
}

describe("request identity: (tenant, id), replays and conflicts", () => {
  let h: NotificationsHarness;
  let api: ReturnType<typeof notificationsApiCalls>;

  beforeAll(async () => {
    h = await NotificationsHarness.start({ MaxDeliveryAttempts: "3" });
    api = notificationsApiCalls(() => h.services);
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  const post = (body: unknown) => api.post(body);
  const status = (id: string, tenantId?: string) =>
    api.get(id, tenantId === undefined ? "" : `?tenantId=${tenantId}`);

  async function knownUser(): Promise<SimUser> {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    return user;
  }

  it("accepts exactly one of 20 concurrent HTTP submissions of one id with different texts, and delivers only that text", async () => {
    const user = await knownUser();
    const id = `race-${randomUUID()}`;
    const bodies = Array.from({ length: 20 }, (_, i) =>
      h.request({ id, recipients: [{ teamsUserId: user.id }], message: { text: `version ${i}` } }),
    );
    const answers = await Promise.all(bodies.map(post));
    const accepted = answers.flatMap((a, i) => (a.status === 202 ? [i] : []));
    expect(accepted).toHaveLength(1);
    expect(answers.filter((a) => a.status === 409)).toHaveLength(19);

    await h.drain();
    expect(received(h, user)).toEqual([`version ${accepted[0]}`]);
  });

  it("treats 20 concurrent HTTP submissions of one request as one: all 202, one message", async () => {
    const user = await knownUser();
    const body = h.request({ recipients: [{ teamsUserId: user.id }] });
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(body)));
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(202));
    await h.drain();
    expect(received(h, user)).toHaveLength(1);
  });

  it("accepts exactly one of 20 concurrent queue messages of one id with different texts, and records the other 19 as conflicts", async () => {
    const user = await knownUser();
    const id = `queue-race-${randomUUID()}`;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        h.deliver({
          body: h.request({
            id,
            recipients: [{ teamsUserId: user.id }],
            message: { text: `queued ${i}` },
          }),
          messageId: `${id}-${i}`,
        }),
      ),
    );
    await h.drain();
    const texts = received(h, user);
    expect(texts).toHaveLength(1);

    const answer = await status(id, h.sim.tenantId);
    expect(answer.status).toBe(200);
    expect(answer.jsonBody).toMatchObject({
      state: "completed",
      final: true,
      counts: { total: 1, sent: 1 },
      conflicts: { count: 19, lastSource: "queue" },
    });
  });

  it("keeps two tenants' requests with one id apart, even while the first waits for its notBefore", async () => {
    const otherTenant = randomUUID();
    const ours = await knownUser();
    const theirs = h.sim.addUser({ tenantId: otherTenant });
    await h.users.upsert({
      tenantId: otherTenant,
      teamsUserId: theirs.id,
      aadObjectId: theirs.aadObjectId,
      serviceUrl: h.sim.serviceUrl,
      conversationId: h.sim.personalConversationId(theirs),
      learnedFrom: "personal",
    });
    const id = `shared-${randomUUID()}`;
    const notBefore = new Date(h.clock.now().getTime() + 60_000).toISOString();
    await h.deliver({
      body: h.request({
        id,
        recipients: [{ teamsUserId: ours.id }],
        message: { text: "for our tenant" },
        notBefore,
      }),
      messageId: `${id}-a`,
    });
    await h.deliver({
      body: h.request({
        id,
        tenantId: otherTenant,
        recipients: [{ teamsUserId: theirs.id }],
        message: { text: "for the other tenant" },
      }),
      messageId: `${id}-b`,
    });
    await h.drain();

    expect(received(h, ours)).toEqual(["for our tenant"]);
    expect(received(h, theirs)).toEqual(["for the other tenant"]);
    for (const tenantId of [h.sim.tenantId, otherTenant]) {
      const answer = await status(id, tenantId);
      expect(answer.jsonBody).toMatchObject({ tenantId, state: "completed", counts: { sent: 1 } });
      expect((answer.jsonBody as { conflicts?: unknown }).conflicts).toBeUndefined();
    }
    // Without a tenant the id is ambiguous: the API says which parameter to add.
    expect(await status(id)).toMatchObject({
      status: 400,
      jsonBody: { errors: [{ path: "tenantId" }] },
    });
  });

  it("lets a request rejected on the queue be sent again with the same id once fixed", async () => {
    const user = await knownUser();
    const id = `fixed-${randomUUID()}`;
    await h.deliver({
      body: h.request({ id, recipients: [{ teamsUserId: user.id }], message: { text: "" } }),
      messageId: `${id}-1`,
    });
    expect((await status(id, h.sim.tenantId)).jsonBody).toMatchObject({ state: "rejected" });

    await h.deliver({
      body: h.request({ id, recipients: [{ teamsUserId: user.id }], message: { text: "fixed" } }),
      messageId: `${id}-2`,
    });
    await h.drain();
    expect(received(h, user)).toEqual(["fixed"]);
    expect((await status(id, h.sim.tenantId)).jsonBody).toMatchObject({
      state: "completed",
      final: true,
      counts: { sent: 1 },
    });
  });

  it("lets a request rejected over HTTP be sent again with the same id once fixed", async () => {
    const user = await knownUser();
    const id = `fixed-http-${randomUUID()}`;
    const bad = await post(h.request({ id, recipients: [], message: { text: "x" } }));
    expect(bad.status).toBe(400);
    const good = await post(h.request({ id, recipients: [{ teamsUserId: user.id }] }));
    expect(good.status).toBe(202);
    await h.drain();
    expect(received(h, user)).toHaveLength(1);
  });

  it("records a queue message reusing an accepted id with different content as a conflict and delivers nothing of it", async () => {
    const user = await knownUser();
    const id = `reuse-${randomUUID()}`;
    const first = h.request({
      id,
      recipients: [{ teamsUserId: user.id }],
      message: { text: "one" },
    });
    await h.deliver({ body: first, messageId: `${id}-1` });
    await h.drain();
    await h.deliver({
      body: { ...first, message: { text: "two" } },
      messageId: `${id}-2`,
    });
    await h.drain();
    expect(received(h, user)).toEqual(["one"]);
    expect((await status(id, h.sim.tenantId)).jsonBody).toMatchObject({
      state: "completed",
      conflicts: { count: 1, lastSource: "queue" },
    });
  });

  it("answers a replay of a delivered request with the same 202 and sends nothing again", async () => {
    const user = await knownUser();
    const body = h.request({ recipients: [{ userPrincipalName: user.userPrincipalName }] });
    const first = await post(body);
    await h.drain();
    // A replay may spell the same recipient in another case and list it twice: the same content.
    const again = await post({
      ...body,
      recipients: [
        { userPrincipalName: user.userPrincipalName.toUpperCase() },
        { userPrincipalName: user.userPrincipalName },
      ],
    });
    expect(again).toMatchObject({ status: 202, jsonBody: first.jsonBody as object });
    await h.drain();
    expect(received(h, user)).toHaveLength(1);
  });
});
