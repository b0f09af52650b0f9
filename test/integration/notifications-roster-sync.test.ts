import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { startListener } from "../support/listener";
import { NotificationsHarness } from "./notifications-harness";

describe("work queue: roster-sync work items", () => {
  let h: NotificationsHarness;

  beforeAll(async () => {
    h = await NotificationsHarness.start({}, { pacing: false });
  });
  afterAll(() => h.close());

  const rosterSync = (body: unknown) =>
    h.deliverWork({
      body,
      sessionId: h.sim.tenantId.toLowerCase(),
      applicationProperties: { [WORK_KIND_PROPERTY]: "roster-sync" },
    });

  it("runs the bot's roster sync, after which a notification to the team reaches every member", async () => {
    const team = h.sim.addTeam({ memberCount: 120 });
    await h.teams.upsert({
      tenantId: h.sim.tenantId,
      teamId: team.id,
      name: team.name,
      serviceUrl: h.sim.serviceUrl,
    });
    await rosterSync({ tenantId: h.sim.tenantId, teamId: team.id });
    expect(h.sim.countRoute("pagedMembers")).toBeGreaterThan(0);

    const request = h.request({ recipients: [{ teamId: team.id }] });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    for (const member of team.members) expect(h.sim.messagesToUser(member)).toHaveLength(1);
  });

  it("calls the stored team's service URL, never one named in the work item's body", async () => {
    const forger = await startListener();
    try {
      const team = h.sim.addTeam({ memberCount: 3 });
      await h.teams.upsert({
        tenantId: h.sim.tenantId,
        teamId: team.id,
        name: team.name,
        serviceUrl: h.sim.serviceUrl,
      });
      const pagesBefore = h.sim.countRoute("pagedMembers");
      await rosterSync({ tenantId: h.sim.tenantId, teamId: team.id, serviceUrl: forger.url });

      expect(forger.hits).toEqual([]);
      expect(h.sim.countRoute("pagedMembers")).toBeGreaterThan(pagesBefore);
      await expect(h.teams.get(h.sim.tenantId, team.id)).resolves.toMatchObject({
        serviceUrl: h.sim.serviceUrl,
      });
      for (const member of team.members)
        await expect(h.users.findByTeamsUserId(h.sim.tenantId, member.id)).resolves.toMatchObject({
          serviceUrl: h.sim.serviceUrl,
        });
    } finally {
      await forger.close();
    }
  });

  it("keeps a service URL learned from an activity newer than the time the roster sync was queued", async () => {
    const team = h.sim.addTeam({ memberCount: 2 });
    await h.teams.upsert({
      tenantId: h.sim.tenantId,
      teamId: team.id,
      name: team.name,
      serviceUrl: h.sim.serviceUrl,
    });
    const queuedAt = new Date(Date.now() - 60_000).toISOString();
    const member = team.members[0]!;
    const newer = "https://smba.trafficmanager.net/emea/";
    await h.users.upsert({
      tenantId: h.sim.tenantId,
      teamsUserId: member.id,
      name: member.name,
      serviceUrl: newer,
      learnedFrom: "message",
    });
    await rosterSync({ tenantId: h.sim.tenantId, teamId: team.id, queuedAt });

    await expect(h.users.findByTeamsUserId(h.sim.tenantId, member.id)).resolves.toMatchObject({
      serviceUrl: newer,
    });
  });

  it("drops an invalid roster-sync job with a logged error instead of retrying it forever", async () => {
    h.logs.length = 0;
    await rosterSync({ teamId: 42 });
    expect(
      h.logs.some(
        (l) => l.level === "error" && l.text.includes("Malformed roster-sync work item dropped"),
      ),
    ).toBe(true);
  });
});
