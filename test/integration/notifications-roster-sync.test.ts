import { type BotServices, createBotServices } from "../../shared/bot/create-bot-services";
import { memoryLogger } from "../../shared/logging";
import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { NotificationsHarness } from "./notifications-harness";

describe("notifications queue: roster-sync work items", () => {
  let h: NotificationsHarness;
  let bot: BotServices | undefined;

  beforeAll(async () => {
    h = await NotificationsHarness.start(
      {},
      {
        pacing: false,
        rosterSync: (job, log) => bot!.syncTeamRoster(job as never, log),
        welcomeCheck: (job, log) => bot!.checkWelcome(job, log),
      },
    );
    bot = createBotServices(h.config, memoryLogger(), h.queue, { tables: h.tables });
  });
  afterAll(() => h.close());

  it("runs the bot's roster sync, after which a notification to the team reaches every member", async () => {
    const team = h.sim.addTeam({ memberCount: 120 });
    await h.teams.upsert({
      tenantId: h.sim.tenantId,
      teamId: team.id,
      name: team.name,
      serviceUrl: h.sim.serviceUrl,
    });
    await h.deliver({
      body: { tenantId: h.sim.tenantId, teamId: team.id, serviceUrl: h.sim.serviceUrl },
      applicationProperties: { [WORK_KIND_PROPERTY]: "roster-sync" },
    });
    expect(h.sim.countRoute("pagedMembers")).toBeGreaterThan(0);

    const request = h.request({ recipients: [{ teamId: team.id }] });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    for (const member of team.members) expect(h.sim.messagesToUser(member)).toHaveLength(1);
  });

  it("drops an invalid roster-sync job with a logged error instead of retrying it forever", async () => {
    h.logs.length = 0;
    await h.deliver({
      body: { teamId: 42 },
      applicationProperties: { [WORK_KIND_PROPERTY]: "roster-sync" },
    });
    expect(
      h.logs.some((l) => l.level === "error" && l.text.includes("Invalid roster-sync job dropped")),
    ).toBe(true);
  });
});
