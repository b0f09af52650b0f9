import { randomUUID } from "node:crypto";

import type { Delivery } from "../../shared/store/delivery-ledger";
import { NotificationsHarness } from "./notifications-harness";

async function rows(h: NotificationsHarness, requestId: string): Promise<Delivery[]> {
  const all: Delivery[] = [];
  for await (const row of h.ledger.list(h.key(requestId))) all.push(row);
  return all;
}

describe("notification fan-out", () => {
  let h: NotificationsHarness;

  beforeAll(async () => {
    // Pacing off: this file measures splitting and delivery, not Teams' 50 calls/s.
    h = await NotificationsHarness.start({}, { pacing: false });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  it("splits a request of 10,000 recipients in one invocation", async () => {
    const recipients = Array.from({ length: 10_000 }, (_, i) => ({ teamsUserId: `29:user-${i}` }));
    const request = h.request({ recipients });
    await h.deliver({ body: request, messageId: request.id });

    expect(h.queue.takeAll("delivery")).toHaveLength(10_000);
    expect(await rows(h, request.id)).toHaveLength(10_000);
    expect((await h.requests.get(h.key(request.id)))?.state).toBe("dispatched");
  });

  it("merges a team with explicit recipients, once per person, and records an unknown team as unreachable", async () => {
    const team = h.sim.addTeam({ memberCount: 3 });
    await h.seedTeam(team);
    const outsider = h.sim.addUser();
    await h.seedUser(outsider);
    const unknownTeam = `19:${randomUUID()}@thread.tacv2`;
    const request = h.request({
      recipients: [
        { teamId: team.id },
        { teamsUserId: team.members[0]!.id },
        { teamsUserId: outsider.id },
        { teamId: unknownTeam },
      ],
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();

    for (const user of [...team.members, outsider])
      expect(h.sim.messagesToUser(user)).toHaveLength(1);
    const status = await h.services.status.get(request.id);
    expect(status?.counts).toMatchObject({ total: 5, sent: 4, unreachable: 1 });
    expect(status?.recipients.find((r) => r.recipient.teamId === unknownTeam)).toMatchObject({
      state: "unreachable",
      lastError: expect.stringContaining("team not known") as unknown,
    });
    expect(status?.state).toBe("completed");
  });

  it("re-enqueues only unfinished recipients when a split request is delivered again", async () => {
    const users = [h.sim.addUser(), h.sim.addUser(), h.sim.addUser()];
    for (const u of users) await h.seedUser(u);
    const request = h.request({ recipients: users.map((u) => ({ aadObjectId: u.aadObjectId })) });
    await h.deliver({ body: request, messageId: request.id });
    const [first, ...rest] = h.queue.takeAll();
    await h.deliverQueued(first!);
    // As if the process died after splitting but before marking the request dispatched.
    const stored = await h.requests.get(h.key(request.id));
    await h.requests.update(stored!, { state: "queued" });

    await h.deliver({ body: request, messageId: request.id, deliveryCount: 2 });
    const again = h.queue.takeAll();
    expect(again.map((m) => m.messageId).sort()).toEqual(rest.map((m) => m.messageId).sort());
    for (const m of again) await h.deliverQueued(m);
    for (const u of users) expect(h.sim.messagesToUser(u)).toHaveLength(1);
  });

  it("holds a request with a future notBefore on the queue until then", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user);
    const notBefore = new Date(h.clock.now().getTime() + 60 * 60_000);
    const request = h.request({
      recipients: [{ teamsUserId: user.id }],
      notBefore: notBefore.toISOString(),
    });
    await h.deliver({ body: request, messageId: request.id });

    expect(h.sim.requests).toHaveLength(0);
    const [held] = h.queue.waiting;
    expect(held?.scheduledFor?.toISOString()).toBe(notBefore.toISOString());
    expect(held?.messageId).not.toBe(request.id); // a new id, or duplicate detection would drop it
    expect((await h.services.status.get(request.id))?.state).toBe("scheduled");

    await h.drain();
    expect(h.sim.messagesToUser(user)).toHaveLength(1);
  });
});
