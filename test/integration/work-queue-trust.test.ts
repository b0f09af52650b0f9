import { WORK_KIND_VALUES } from "../../shared/notifications/work-items";
import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { type Listener, startListener } from "../support/listener";
import { NotificationsHarness } from "./notifications-harness";

/**
 * The trust boundary: the intake queue is LOB-facing (any LOB app may send to it), the work
 * queue is Herald's. Nothing a LOB app puts on the intake queue runs as Herald's own work, and
 * no call goes anywhere but to the service URL Herald stored.
 */
describe("the intake queue as a trust boundary", () => {
  let h: NotificationsHarness;
  let forger: Listener;

  beforeAll(async () => {
    h = await NotificationsHarness.start({}, { pacing: false });
    forger = await startListener();
  });
  afterAll(async () => {
    await forger.close();
    await h.close();
  });

  it.each([...WORK_KIND_VALUES])(
    "refuses and records a message shaped like Herald's %s work, making no outbound call",
    async (kind) => {
      const user = h.sim.addUser();
      await h.seedUser(user, h.sim.personalConversationId(user));
      const team = h.sim.addTeam({ memberCount: 2 });
      await h.seedTeam(team);
      const stored = h.request({ recipients: [{ teamsUserId: user.id }] });
      await h.deliver({ body: stored, messageId: stored.id });
      const callsBefore = h.sim.requests.length;
      const queuedBefore = h.queue.sent.length;

      const id = `forged-${kind}-${Date.now()}`;
      // Everything a forger could want Herald to act on, and a request id so it is recorded.
      const body = {
        id,
        tenantId: h.sim.tenantId,
        requestId: stored.id,
        recipient: { teamsUserId: user.id },
        attempt: 1,
        teamId: team.id,
        scope: "personal",
        teamsUserId: user.id,
        round: 1,
        conversationId: team.id,
        activityId: "1",
        fromTeamsUserId: user.id,
        botId: h.sim.botId,
        text: "forged",
        targets: [{ id: user.id }],
        serviceUrl: forger.url,
      };
      await h.deliver({
        body,
        messageId: id,
        applicationProperties: { [WORK_KIND_PROPERTY]: kind },
      });

      expect(h.sim.requests.length).toBe(callsBefore);
      expect(forger.hits).toEqual([]);
      expect(h.queue.sent.length).toBe(queuedBefore);
      const refused = await h.services.status.get(id);
      expect(refused).toMatchObject({ state: "rejected" });
      expect(JSON.stringify(refused)).toContain("internal work marker");
    },
  );

  it("refuses a valid request that carries the internal marker instead of delivering it", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({
      body: request,
      messageId: request.id,
      applicationProperties: { [WORK_KIND_PROPERTY]: "delivery" },
    });
    await h.drain();
    expect(h.sim.messagesToUser(user)).toHaveLength(0);
    await expect(h.services.status.get(request.id)).resolves.toMatchObject({ state: "rejected" });
  });
});

describe("outbound calls with a bot app id configured", () => {
  let h: NotificationsHarness;

  beforeAll(async () => {
    h = await NotificationsHarness.start(
      {
        MicrosoftAppId: "00000000-0000-0000-0000-0000000000a1",
        MicrosoftAppTenantId: "00000000-0000-0000-0000-0000000000b2",
        MicrosoftAppType: "UserAssignedMSI",
      },
      { pacing: false },
    );
  });
  afterAll(() => h.close());

  it("refuses a delivery whose stored service URL is not a Teams service host, and records why", async () => {
    const user = h.sim.addUser();
    // The simulator is on loopback: allowed only in anonymous local mode.
    await h.seedUser(user, h.sim.personalConversationId(user));
    const request = h.request({ recipients: [{ teamsUserId: user.id }] });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();

    expect(h.sim.requests).toHaveLength(0);
    const row = await h.ledger.get(h.key(request.id), `teamsUserId:${user.id}`);
    expect(row).toMatchObject({ state: "failed" });
    expect(row?.lastError).toMatch(/not a Teams service host/);
  });

  it("drops a roster sync whose stored team service URL is not a Teams service host", async () => {
    const team = h.sim.addTeam({ memberCount: 2 });
    await h.seedTeam(team);
    h.logs.length = 0;
    await h.deliverWork({
      body: { tenantId: h.sim.tenantId, teamId: team.id },
      sessionId: h.sim.tenantId.toLowerCase(),
      applicationProperties: { [WORK_KIND_PROPERTY]: "roster-sync" },
    });
    expect(h.sim.requests).toHaveLength(0);
    expect(
      h.logs.some((l) => l.level === "error" && l.text.includes("not a Teams service host")),
    ).toBe(true);
  });
});
