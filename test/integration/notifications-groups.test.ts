import { printStatus } from "../../shared/cli/status-command";
import { startGraphSimulator } from "../graph-simulator";
import type { GraphSimulator } from "../graph-simulator/simulator";
import type { SimUser } from "../simulator";
import { NotificationsHarness } from "./notifications-harness";

/**
 * Entra group recipients, expanded through the real Graph client against the Graph simulator
 * (every page of transitive user members), delivered through the Teams simulator.
 */
describe("notifications to Entra groups", () => {
  let graph: GraphSimulator;
  let h: NotificationsHarness;

  beforeAll(async () => {
    graph = await startGraphSimulator({ defaultPageSize: 500 });
    h = await NotificationsHarness.start({
      GraphEndpoint: graph.endpoint,
      MaxDeliveryAttempts: "3",
    });
  });
  afterAll(async () => {
    await h.close();
    await graph.close();
  });
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  /** A person Herald knows (a 1:1 chat is stored) and Graph lists with the same AAD id. */
  async function knownPerson(userType: "Member" | "Guest" = "Member"): Promise<SimUser> {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    graph.addUser({ id: user.aadObjectId, userPrincipalName: user.userPrincipalName, userType });
    return user;
  }

  it("delivers once to each of a 1,200-member group's users over several pages, guests excluded, and once to a member also named directly", async () => {
    const members = h.sim.addUsers(1_200);
    await h.users.upsertMany(
      members.map((u) => ({
        tenantId: h.sim.tenantId,
        teamsUserId: u.id,
        aadObjectId: u.aadObjectId,
        userPrincipalName: u.userPrincipalName,
        serviceUrl: h.sim.serviceUrl,
        conversationId: h.sim.personalConversationId(u),
        learnedFrom: "personal" as const,
      })),
    );
    for (const u of members)
      graph.addUser({ id: u.aadObjectId, userPrincipalName: u.userPrincipalName });
    const guests = [await knownPerson("Guest"), await knownPerson("Guest")];
    const group = graph.addGroup({
      members: [...members, ...guests].map((u) => graph.user(u.aadObjectId)!),
      otherMemberCount: 3,
    });
    const alsoDirect = members[7]!;

    const request = h.request({
      recipients: [{ groupId: group.id }, { userPrincipalName: alsoDirect.userPrincipalName }],
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain(16, 40);

    // Graph pages at most 999 users: 1,202 of them take two pages (followed by @odata.nextLink).
    expect(graph.countRoute("listGroupUserMembers")).toBe(2);
    for (const m of members) expect(h.sim.messagesToUser(m)).toHaveLength(1);
    for (const g of guests) expect(h.sim.messagesToUser(g)).toHaveLength(0);
    expect(await h.services.status.get(request.id, { limit: 0 })).toMatchObject({
      state: "completed",
      counts: { total: 1_201, sent: 1_200, duplicate: 1 },
    });
  }, 180_000);

  it("includes a group's guests when the request says so", async () => {
    const member = await knownPerson();
    const guest = await knownPerson("Guest");
    const group = graph.addGroup({
      members: [graph.user(member.aadObjectId)!, graph.user(guest.aadObjectId)!],
    });
    const request = h.request({ recipients: [{ groupId: group.id }], includeGuests: true });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    expect(h.sim.messagesToUser(guest)).toHaveLength(1);
    expect(h.sim.messagesToUser(member)).toHaveLength(1);
  });

  it("names each member in the status and in herald status by the UPN and display name Graph lists", async () => {
    const adele = h.sim.addUser({
      name: "Adele Vance",
      userPrincipalName: "adele.v@contoso.example",
    });
    await h.seedUser(adele, h.sim.personalConversationId(adele));
    graph.addUser({
      id: adele.aadObjectId,
      userPrincipalName: "adele.v@contoso.example",
      displayName: "Adele Vance",
    });
    const group = graph.addGroup({ members: [graph.user(adele.aadObjectId)!] });
    const request = h.request({ recipients: [{ groupId: group.id }] });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();

    const status = await h.services.status.get(request.id);
    expect(status?.recipients).toEqual([
      expect.objectContaining({
        recipient: { aadObjectId: adele.aadObjectId },
        state: "sent",
        userPrincipalName: "adele.v@contoso.example",
        displayName: "Adele Vance",
      }),
    ]);
    let printed = "";
    printStatus(status!, {
      stdout: { write: (chunk: string) => (printed += chunk) },
      stderr: { write: () => true },
    });
    expect(printed).toMatch(/sent +adele\.v@contoso\.example \(Adele Vance\)/);
  });

  it("schedules the dispatch again after Graph's Retry-After when the member listing is throttled, then delivers", async () => {
    const member = await knownPerson();
    const group = graph.addGroup({ members: [graph.user(member.aadObjectId)!] });
    graph.failNext("listGroupUserMembers", { status: 429, retryAfter: 7 });
    const request = h.request({ recipients: [{ groupId: group.id }] });
    // Before the call: the clock also runs on real time, which passes while the work runs.
    const handedOverAt = h.clock.now().getTime();
    await h.deliver({ body: request, messageId: request.id });

    const [again] = h.queue.waiting;
    expect(again?.applicationProperties?.heraldKind).toBe("dispatch");
    expect(again!.scheduledFor!.getTime() - handedOverAt).toBeGreaterThanOrEqual(7_000);
    expect(h.sim.messagesToUser(member)).toHaveLength(0);
    await h.drain();
    expect(h.sim.messagesToUser(member)).toHaveLength(1);
  });

  it("records a group as unreachable, naming the permission, when consent for group members is missing", async () => {
    const member = await knownPerson();
    const group = graph.addGroup({ members: [graph.user(member.aadObjectId)!] });
    graph.revoke("GroupMember.Read.All");
    try {
      const request = h.request({
        recipients: [{ groupId: group.id }, { teamsUserId: member.id }],
      });
      await h.deliver({ body: request, messageId: request.id });
      await h.drain();
      const status = await h.services.status.get(request.id);
      const row = status?.recipients.find((r) => r.recipient.groupId === group.id);
      expect(row).toMatchObject({ state: "unreachable" });
      expect(row?.lastError).toMatch(/GroupMember\.Read\.All/);
      // The directly named recipient is still delivered.
      expect(h.sim.messagesToUser(member)).toHaveLength(1);
    } finally {
      graph.grant("GroupMember.Read.All");
    }
  });

  it("records an unknown group as unreachable", async () => {
    const request = h.request({
      recipients: [{ groupId: "00000000-0000-4000-8000-000000000001" }],
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    expect(await h.services.status.get(request.id)).toMatchObject({
      state: "completed",
      counts: { unreachable: 1 },
    });
  });
});
