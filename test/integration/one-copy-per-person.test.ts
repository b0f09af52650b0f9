import { recipientKey } from "../../shared/notifications/recipients";
import { deliveryPartitionKey } from "../../shared/store/delivery-ledger";
import { odata, TABLES } from "../../shared/store/table-factory";
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

  /** The row keys of a request's per-user guards, as stored. */
  async function guardRows(requestId: string): Promise<string[]> {
    const table = await h.tables.table(TABLES.deliveries);
    const keys: string[] = [];
    const partition = deliveryPartitionKey(h.key(requestId));
    for await (const row of table.listEntities({
      queryOptions: { filter: odata`PartitionKey eq ${partition}` },
    }))
      if (row.rowKey?.startsWith("user~") === true) keys.push(row.rowKey);
    return keys;
  }

  it("sends people named only by AAD ids one copy each without a per-user guard, even when every item comes twice at once", async () => {
    const people = [h.sim.addUser(), h.sim.addUser(), h.sim.addUser()];
    for (const p of people) await h.seedUser(p, h.sim.personalConversationId(p));
    const request = h.request({ recipients: people.map((p) => ({ aadObjectId: p.aadObjectId })) });
    await h.deliver({ body: request, messageId: request.id });
    const items = h.queue.takeAll("delivery");
    expect(items.map((m) => (m.body as { distinctPeople?: boolean }).distinctPeople)).toEqual([
      true,
      true,
      true,
    ]);

    await Promise.all([...items, ...items].map((item) => h.deliverQueued(item)));
    await h.drain();

    for (const p of people) expect(h.sim.messagesToUser(p)).toHaveLength(1);
    expect(await guardRows(request.id)).toEqual([]);
    expect((await h.services.status.get(request.id))?.counts).toMatchObject({ total: 3, sent: 3 });
  });

  it("sends one copy to a person named by AAD id and through a team the bot learned of between two runs of the dispatch", async () => {
    const person = h.sim.addUser();
    await h.seedUser(person, h.sim.personalConversationId(person));
    const team = h.sim.addTeam({ members: [person] });
    const request = h.request({
      recipients: [{ aadObjectId: person.aadObjectId }, { teamId: team.id }],
    });
    // First run: the team is not known yet, so only the AAD id has a delivery.
    await h.deliver({ body: request, messageId: request.id });
    const first = h.queue.takeAll("delivery");
    // The dispatch runs again (a crash before it marked the request), now with the roster.
    await h.seedTeam(team);
    const stored = await h.requests.get(h.key(request.id));
    await h.requests.update(stored!, { state: "queued" });
    await h.deliver({ body: request, messageId: request.id, deliveryCount: 2 });
    // The broker drops the AAD id's item again (same message id): the first run's stays.
    const seen = new Set(first.map((m) => m.messageId));
    const second = h.queue.takeAll("delivery").filter((m) => !seen.has(m.messageId));
    expect([first.length, second.length]).toEqual([1, 1]);

    await Promise.all([...first, ...second].map((item) => h.deliverQueued(item)));
    await h.drain();

    expect(h.sim.messagesToUser(person)).toHaveLength(1);
  });

  it("keeps the per-user guard when a request names anyone by UPN", async () => {
    const [a, b] = [h.sim.addUser(), h.sim.addUser()];
    for (const p of [a, b]) await h.seedUser(p, h.sim.personalConversationId(p));
    const request = h.request({
      recipients: [{ aadObjectId: a.aadObjectId }, { userPrincipalName: b.userPrincipalName }],
    });
    await h.deliver({ body: request, messageId: request.id });
    const items = h.queue.takeAll("delivery");
    expect(items.map((m) => (m.body as { distinctPeople?: boolean }).distinctPeople)).toEqual([
      undefined,
      undefined,
    ]);

    for (const item of items) await h.deliverQueued(item);

    expect(h.sim.messagesToUser(a)).toHaveLength(1);
    expect(h.sim.messagesToUser(b)).toHaveLength(1);
    expect(await guardRows(request.id)).toHaveLength(2);
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
