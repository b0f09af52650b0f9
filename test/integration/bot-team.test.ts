import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { type BotHarness, startBotHarness } from "../support/bot-harness";
import type { RecordedMessage } from "../support/memory-queue";

const ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive";

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const id of iterable) out.push(id);
  return out;
}

describe("Bot endpoint, team scope", () => {
  let h: BotHarness;

  beforeEach(async () => {
    h = await startBotHarness();
  });

  afterEach(async () => {
    await h.close();
  });

  const welcomesIn = (conversationId: string) =>
    h.sim
      .activitiesIn(conversationId)
      .filter((a) =>
        (a.attachments ?? []).some(
          (x) => (x as { contentType?: string }).contentType === ADAPTIVE_CARD,
        ),
      );

  it("stores the team, queues the roster sync, and syncs a 1,200-member roster with one team welcome", async () => {
    const team = h.sim.addTeam({ name: "Operations", memberCount: 1200 });
    const installer = team.members[0]!;

    // Teams sends both activities for one install, possibly to two instances at once.
    const responses = await Promise.all([
      h.post(h.sim.activities.teamInstall(team, installer), { drain: false }),
      h.post(h.sim.activities.teamInstallationUpdate(team, installer), { drain: false }),
    ]);
    expect(responses.map((r) => r.status)).toEqual([200, 200]);
    // The endpoint called Teams for nothing: the roster and the welcome are tenant work.
    expect(responses.map((r) => r.callsDuringRequest)).toEqual([0, 0]);

    await expect(h.services.teams.get(h.sim.tenantId, team.id)).resolves.toMatchObject({
      teamId: team.id,
      name: "Operations",
      generalChannelId: team.id,
      serviceUrl: h.sim.serviceUrl,
      status: "active",
    });
    const kindOf = (m: RecordedMessage) => m.applicationProperties?.[WORK_KIND_PROPERTY];
    // The two install events collapse at the broker: one roster sync, one welcome.
    expect(h.queue.waiting.map(kindOf).sort()).toEqual(["roster-sync", "welcome"]);
    const sync = h.queue.waiting.find((m) => kindOf(m) === "roster-sync")!;
    expect(sync.body).toEqual({
      tenantId: h.sim.tenantId,
      teamId: team.id,
      queuedAt: expect.any(String) as unknown,
    });
    expect(sync.sessionId).toBe(h.sim.tenantId.toLowerCase());

    await h.drainWork();
    expect(h.sim.countRoute("pagedMembers")).toBeGreaterThanOrEqual(3);
    expect(welcomesIn(team.generalChannelId)).toHaveLength(1);

    const members = await collect(h.services.teams.listMemberIds(h.sim.tenantId, team.id));
    expect(new Set(members)).toEqual(new Set(team.members.map((m) => m.id)));
    const last = team.members[1199]!;
    await expect(
      h.services.users.findByUserPrincipalName(h.sim.tenantId, last.userPrincipalName),
    ).resolves.toMatchObject({
      teamsUserId: last.id,
      aadObjectId: last.aadObjectId.toLowerCase(),
      learnedFrom: "roster",
      serviceUrl: h.sim.serviceUrl,
    });
    await expect(h.services.teams.get(h.sim.tenantId, team.id)).resolves.toMatchObject({
      memberCount: 1200,
    });
    expect(welcomesIn(team.generalChannelId)).toHaveLength(1);
  });

  it("marks members who left the team removed at the next roster sync", async () => {
    const team = h.sim.addTeam({ name: "Small", memberCount: 5 });
    await h.post(h.sim.activities.teamInstall(team, team.members[0]!));
    const job = { tenantId: h.sim.tenantId, teamId: team.id };
    const leaver = team.members[4]!;
    h.sim.removeMembers(team, [leaver]);
    // The same job again (a redelivery, or a later sync) notices the leaver and welcomes no one twice.
    await expect(h.services.syncTeamRoster(job)).resolves.toEqual({ members: 4 });
    expect(welcomesIn(team.generalChannelId)).toHaveLength(1);
    const members = await collect(h.services.teams.listMemberIds(h.sim.tenantId, team.id));
    expect(members).toHaveLength(4);
    expect(members).not.toContain(leaver.id);
  });

  it("records members added to a team and marks members removed, keeping their references", async () => {
    const team = h.sim.addTeam({ name: "Design", memberCount: 2 });
    await h.post(h.sim.activities.teamInstall(team, team.members[0]!));
    const [newcomer] = h.sim.addUsers(1);
    h.sim.addMembers(team, [newcomer!]);

    expect((await h.post(h.sim.activities.teamMembersAdded(team, [newcomer!]))).status).toBe(200);
    await expect(
      h.services.users.findByAadObjectId(h.sim.tenantId, newcomer!.aadObjectId),
    ).resolves.toMatchObject({ teamsUserId: newcomer!.id, learnedFrom: "team", status: "active" });
    expect(await collect(h.services.teams.listMemberIds(h.sim.tenantId, team.id))).toContain(
      newcomer!.id,
    );

    expect(
      (await h.post(h.sim.activities.teamMembersRemoved(team, [newcomer!], team.members[0])))
        .status,
    ).toBe(200);
    await expect(
      h.services.users.findByTeamsUserId(h.sim.tenantId, newcomer!.id),
    ).resolves.toMatchObject({ status: "removed" });
    expect(await collect(h.services.teams.listMemberIds(h.sim.tenantId, team.id))).not.toContain(
      newcomer!.id,
    );
  });

  it("marks the team removed when Herald is removed, skips its queued sync, and never welcomes it twice", async () => {
    const team = h.sim.addTeam({ name: "Finance", memberCount: 3 });
    await h.post(h.sim.activities.teamInstall(team, team.members[0]!), { drain: false });
    const queued = h.queue.takeAll();
    const sync = queued.find(
      (m) => m.applicationProperties?.[WORK_KIND_PROPERTY] === "roster-sync",
    )!;
    const welcome = queued.find(
      (m) => m.applicationProperties?.[WORK_KIND_PROPERTY] === "welcome",
    )!;
    await h.runWork(welcome);

    expect((await h.post(h.sim.activities.botRemovedFromTeam(team, team.members[0]))).status).toBe(
      200,
    );
    await expect(h.services.teams.get(h.sim.tenantId, team.id)).resolves.toMatchObject({
      status: "removed",
      name: "Finance",
    });
    await h.runWork(sync);
    expect(h.sim.countRoute("pagedMembers")).toBe(0);

    h.advance(11 * 60_000); // a re-install after the broker's duplicate window
    await h.post(h.sim.activities.teamInstall(team, team.members[0]!));
    await expect(h.services.teams.get(h.sim.tenantId, team.id)).resolves.toMatchObject({
      status: "active",
    });
    expect(welcomesIn(team.generalChannelId)).toHaveLength(1);
  });

  it("drops a roster-sync work item without a team id with a logged error naming the field", async () => {
    const logs = await h.runWork({
      body: { tenantId: h.sim.tenantId },
      messageId: "rs-bad",
      sessionId: h.sim.tenantId,
      applicationProperties: { [WORK_KIND_PROPERTY]: "roster-sync" },
      sequence: 0,
      sentAt: new Date(),
    });
    expect(logs.some((l) => /Malformed roster-sync work item dropped.*teamId/.test(l))).toBe(true);
    expect(h.sim.requests).toHaveLength(0);
  });
});
