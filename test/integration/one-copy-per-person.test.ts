import { recipientKey } from "../../shared/notifications/recipients";
import { NotificationsHarness } from "./notifications-harness";

describe("one copy per person", () => {
  let h: NotificationsHarness;

  beforeAll(async () => {
    h = await NotificationsHarness.start({ MaxDeliveryAttempts: "3" });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  it("sends one message to a person named by AAD id, UPN and Teams id and through a team, and says which names were the same person", async () => {
    const person = h.sim.addUser();
    const colleague = h.sim.addUser();
    const team = h.sim.addTeam({ members: [person, colleague] });
    await h.seedTeam(team);
    await h.seedUser(person, h.sim.personalConversationId(person));

    const request = h.request({
      recipients: [
        { aadObjectId: person.aadObjectId },
        { userPrincipalName: person.userPrincipalName.toUpperCase() },
        { teamsUserId: person.id },
        { teamId: team.id },
      ],
    });
    await h.deliver({ body: request, messageId: request.id });
    // Concurrent deliveries of the names: the per-user guard decides, not timing.
    await h.drain(8);

    expect(h.sim.messagesToUser(person)).toHaveLength(1);
    expect(h.sim.messagesToUser(colleague)).toHaveLength(1);
    const status = await h.services.status.get(request.id);
    expect(status).toMatchObject({
      state: "completed",
      final: true,
      counts: { total: 4, sent: 2, duplicate: 2 },
    });
    const duplicates = status!.recipients.filter((r) => r.state === "duplicate");
    const sent = status!.recipients.find((r) => r.state === "sent" && r.teamsUserId === person.id);
    for (const d of duplicates) {
      expect(d.teamsUserId).toBe(person.id);
      // Whichever name claimed the person first; shown as its key (a UPN lower-cased).
      expect(recipientKey(d.duplicateOf!)).toBe(recipientKey(sent!.recipient));
    }
  });

  it("sends one message when two names of one person are delivered at the same moment, however often", async () => {
    for (let round = 0; round < 5; round++) {
      const person = h.sim.addUser();
      await h.seedUser(person, h.sim.personalConversationId(person));
      const request = h.request({
        recipients: [{ aadObjectId: person.aadObjectId }, { teamsUserId: person.id }],
      });
      await h.deliver({ body: request, messageId: request.id });
      const items = h.queue.takeAll("delivery");
      expect(items).toHaveLength(2);
      await Promise.all(items.map((item) => h.deliverQueued(item)));
      expect(h.sim.messagesToUser(person)).toHaveLength(1);
    }
  });

  it("still sends to a person whose other name failed to resolve", async () => {
    const person = h.sim.addUser();
    await h.seedUser(person, h.sim.personalConversationId(person));
    const request = h.request({
      recipients: [
        { userPrincipalName: "nobody@example.com" },
        { aadObjectId: person.aadObjectId },
      ],
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    expect(h.sim.messagesToUser(person)).toHaveLength(1);
    expect(await h.services.status.get(request.id)).toMatchObject({
      counts: { sent: 1, unreachable: 1 },
    });
  });
});
