import { TableRequestCounter } from "../../bench/table-request-counter";
import { NotificationsHarness } from "./notifications-harness";

/**
 * The steady path's cost in round trips to Table Storage, counted by a proxy in front of
 * Azurite (the benchmark's counter): a request to a known user whose 1:1 chat is stored. The
 * events ride on writes the path makes anyway (the request row carries `accepted`, the outcome
 * `sent` and `completed`); the one request they add is the user's unread entry, which a read
 * receipt needs.
 */
describe("the steady path's Table requests", () => {
  let counter: TableRequestCounter;

  beforeAll(async () => {
    const connectionString = process.env.HERALD_TEST_TABLES_CONNECTION;
    if (connectionString === undefined) throw new Error("Azurite is not running");
    counter = await TableRequestCounter.start({ connectionString, prefix: "" });
  });
  afterAll(() => counter.close());

  async function measure(settings: Record<string, string>) {
    const h = await NotificationsHarness.start({
      TableStorageConnection: counter.target.connectionString,
      ...settings,
    });
    try {
      const user = h.sim.addUser();
      await h.seedUser(user, h.sim.personalConversationId(user));
      const request = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
      const before = counter.count;
      const teamsBefore = h.sim.requests.length;
      await h.deliver({ body: request, messageId: request.id });
      return {
        tableRequests: counter.count - before,
        teamsCalls: h.sim.requests.length - teamsBefore,
        messages: h.sim.messagesToUser(user).length,
        events: h.topic.sent.map((m) => (m.body as { type: string }).type),
      };
    } finally {
      await h.close();
    }
  }

  it("delivers to a user named by AAD id in five Table requests and one Teams call with events on", async () => {
    const measured = await measure({});

    // The request row with its body and `accepted` (one insert, no transaction), the user's
    // AAD index row (its copy of the route: no read of the reference), the claim (one insert: a
    // sole recipient takes no per-user guard), the outcome with `sent` and `completed`, the
    // unread entry.
    expect(measured).toEqual({
      tableRequests: 5,
      teamsCalls: 1,
      messages: 1,
      events: [
        "herald.notification.accepted",
        "herald.delivery.sent",
        "herald.notification.completed",
      ],
    });
  });

  it("delivers a fan-out's recipient named by AAD id in four Table requests: its row is claimed as the fan-out wrote it, unread", async () => {
    const h = await NotificationsHarness.start({
      TableStorageConnection: counter.target.connectionString,
    });
    try {
      const [a, b] = [h.sim.addUser(), h.sim.addUser()];
      for (const u of [a, b]) await h.seedUser(u, h.sim.personalConversationId(u));
      const request = h.request({
        recipients: [{ aadObjectId: a.aadObjectId }, { aadObjectId: b.aadObjectId }],
      });
      await h.deliver({ body: request, messageId: request.id });
      const [first, second] = h.queue.takeAll("delivery");

      const before = counter.count;
      await h.deliverQueued(first!);
      const tableRequests = counter.count - before;
      await h.deliverQueued(second!);

      // The AAD index row, the claim (no guard: people named by AAD ids only), the outcome,
      // the unread entry. No read of the row first.
      expect(tableRequests).toBe(4);
      expect([h.sim.messagesToUser(a).length, h.sim.messagesToUser(b).length]).toEqual([1, 1]);
      expect((await h.services.status.get(request.id))?.counts).toMatchObject({ sent: 2 });
    } finally {
      await h.close();
    }
  });

  it("delivers in four Table requests with NotificationEvents off, and publishes nothing", async () => {
    const measured = await measure({ NotificationEvents: "false" });

    expect(measured).toEqual({ tableRequests: 4, teamsCalls: 1, messages: 1, events: [] });
  });
});
