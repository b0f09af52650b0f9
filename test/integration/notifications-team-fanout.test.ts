import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import type { Delivery } from "../../shared/store/delivery-ledger";
import { NotificationsHarness } from "./notifications-harness";

async function rows(h: NotificationsHarness, requestId: string): Promise<Delivery[]> {
  const all: Delivery[] = [];
  for await (const row of h.ledger.list(h.key(requestId))) all.push(row);
  return all;
}

describe("notification fan-out to a team", () => {
  let h: NotificationsHarness;

  beforeAll(async () => {
    // Pacing off: this file measures splitting and delivery, not Teams' 50 calls/s.
    h = await NotificationsHarness.start({}, { pacing: false });
  });
  afterAll(() => h.close());

  it("fans a request for a team of 1,200 members out to 1,200 deliveries, each with its ledger row", async () => {
    const team = h.sim.addTeam({ memberCount: 1_200 });
    // Membership for all 1,200; user references only for the members delivered to below.
    const sampledMembers = team.members.filter((_, i) => i % 12 === 0);
    await h.seedTeam(team, sampledMembers);
    const request = h.request({ recipients: [{ teamId: team.id }] });
    await h.deliver({ body: request, messageId: request.id });

    const items = h.queue.takeAll("delivery");
    // The request's completion check would look again and again at the 1,100 left pending.
    expect(h.queue.takeAll("completion-check")).toHaveLength(1);
    expect(items).toHaveLength(1_200);
    expect(new Set(items.map((m) => m.messageId)).size).toBe(1_200);
    expect(items.every((m) => m.applicationProperties?.[WORK_KIND_PROPERTY] === "delivery")).toBe(
      true,
    );
    const ledger = await rows(h, request.id);
    expect(ledger).toHaveLength(1_200);
    expect(ledger.every((r) => r.state === "pending")).toBe(true);
    expect(h.sim.requests).toHaveLength(0);

    // Every work item is independent: deliver those of the sampled members (the whole path for
    // 1,200 would mostly measure Azurite) and check exactly they got one message each.
    const sampled = new Set(sampledMembers.map((m) => m.id));
    const recipientOf = (m: (typeof items)[number]) =>
      (m.body as { recipient: { teamsUserId: string } }).recipient.teamsUserId;
    const sample = items.filter((m) => sampled.has(recipientOf(m)));
    expect(sample).toHaveLength(100);
    for (const item of sample) await h.queue.schedule(item, new Date());
    await h.drain(16);
    for (const member of team.members)
      expect(h.sim.messagesToUser(member)).toHaveLength(sampled.has(member.id) ? 1 : 0);
    expect((await h.services.status.get(request.id))?.counts).toMatchObject({
      total: 1_200,
      sent: 100,
      pending: 1_100,
    });
  });
});
