import { WelcomeLedger } from "../../shared/store/welcome-ledger";
import { type BotHarness, startBotHarness } from "../support/bot-harness";

const ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive";

function isWelcome(activity: { attachments: readonly unknown[] | undefined }): boolean {
  return (activity.attachments ?? []).some(
    (a) => (a as { contentType?: string }).contentType === ADAPTIVE_CARD,
  );
}

describe("Bot endpoint, personal scope", () => {
  let h: BotHarness;

  beforeEach(async () => {
    h = await startBotHarness({ settings: { WelcomeLeaseSeconds: "1" } });
  });

  afterEach(async () => {
    await h.close();
  });

  const welcomesTo = (user: Parameters<BotHarness["sim"]["messagesToUser"]>[0]) =>
    h.sim.messagesToUser(user).filter(isWelcome);

  it("records the user's reference on personal install and sends one welcome", async () => {
    const ada = h.sim.addUser({ name: "Ada Lovelace" });
    const install = await h.post(h.sim.activities.personalInstall(ada));
    const update = await h.post(h.sim.activities.personalConversationUpdate(ada));
    expect([install.status, update.status]).toEqual([200, 200]);

    const welcomes = welcomesTo(ada);
    expect(welcomes).toHaveLength(1);
    expect(JSON.stringify(welcomes[0]!.attachments)).toContain("Hi Ada");

    const reference = await h.services.users.findByAadObjectId(h.sim.tenantId, ada.aadObjectId);
    expect(reference).toMatchObject({
      teamsUserId: ada.id,
      name: "Ada Lovelace",
      userPrincipalName: ada.userPrincipalName,
      serviceUrl: h.sim.serviceUrl,
      conversationId: h.sim.personalConversationId(ada),
      learnedFrom: "personal",
      status: "active",
    });
    await expect(
      h.services.users.findByUserPrincipalName(h.sim.tenantId, ada.userPrincipalName.toUpperCase()),
    ).resolves.toMatchObject({ teamsUserId: ada.id });

    const ledger = new WelcomeLedger(h.tables, { leaseMs: 1000 });
    await expect(
      ledger.get({ scope: "personal", tenantId: h.sim.tenantId, teamsUserId: ada.id }),
    ).resolves.toMatchObject({ state: "sent", activityId: welcomes[0]!.id });
  });

  it("sends exactly one welcome for 20 concurrent duplicate install activities", async () => {
    const grace = h.sim.addUser({ name: "Grace Hopper" });
    const activities = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0
        ? h.sim.activities.personalInstall(grace)
        : h.sim.activities.personalConversationUpdate(grace),
    );
    // Retried deliveries: the same activity (same id) posted again.
    activities.push(activities[0]!, activities[1]!);
    const results = await Promise.all(activities.map((a) => h.post(a)));
    expect(results.map((r) => r.status)).toEqual(activities.map(() => 200));
    expect(welcomesTo(grace)).toHaveLength(1);
    expect(h.sim.messagesToUser(grace)).toHaveLength(1);
  });

  it("sends no second welcome when the user uninstalls and reinstalls", async () => {
    const alan = h.sim.addUser({ name: "Alan Turing" });
    await h.post(h.sim.activities.personalInstall(alan));
    expect(welcomesTo(alan)).toHaveLength(1);

    expect((await h.post(h.sim.activities.personalUninstall(alan))).status).toBe(200);
    await expect(
      h.services.users.findByTeamsUserId(h.sim.tenantId, alan.id),
    ).resolves.toMatchObject({
      status: "uninstalled",
      conversationId: h.sim.personalConversationId(alan),
    });

    h.advance(3_600_000);
    await h.post(h.sim.activities.personalInstall(alan));
    await h.post(h.sim.activities.personalConversationUpdate(alan));
    expect(welcomesTo(alan)).toHaveLength(1);
    await expect(
      h.services.users.findByTeamsUserId(h.sim.tenantId, alan.id),
    ).resolves.toMatchObject({ status: "active" });
  });

  it("recovers a welcome claimed by an instance that died before sending, after the lease", async () => {
    const joan = h.sim.addUser({ name: "Joan Clarke" });
    // Another instance claimed the welcome and crashed before sending it.
    const crashed = new WelcomeLedger(h.tables, { leaseMs: h.config.welcomeLeaseMs });
    const claim = await crashed.claim({
      scope: "personal",
      tenantId: h.sim.tenantId,
      teamsUserId: joan.id,
    });
    expect(claim.kind).toBe("claimed");

    // While the lease runs, the install (or its retry) must not send a second welcome.
    await h.post(h.sim.activities.personalInstall(joan));
    expect(welcomesTo(joan)).toHaveLength(0);

    h.advance(h.config.welcomeLeaseMs + 1);
    expect((await h.post(h.sim.activities.message(joan, "hello?"))).status).toBe(200);
    expect(welcomesTo(joan)).toHaveLength(1);

    // Later messages get the help answer, never another welcome.
    await h.post(h.sim.activities.message(joan, "anyone there?"));
    expect(welcomesTo(joan)).toHaveLength(1);
    expect(h.sim.messagesToUser(joan)).toHaveLength(2);
  });

  it("retries a welcome whose send failed on the user's next activity", async () => {
    const kat = h.sim.addUser({ name: "Katherine Johnson" });
    h.sim.failNext("sendActivity", { status: 403, code: "ConversationBlockedByUser", user: kat });
    expect((await h.post(h.sim.activities.personalInstall(kat))).status).toBe(200);
    expect(welcomesTo(kat)).toHaveLength(0);

    await h.post(h.sim.activities.message(kat, "hi"));
    expect(welcomesTo(kat)).toHaveLength(1);
  });

  it("learns a user from their first message even when the install event was missed", async () => {
    const lin = h.sim.addUser({ name: "Lin Wei" });
    await h.post(h.sim.activities.message(lin, "hello"));
    await expect(h.services.users.findByTeamsUserId(h.sim.tenantId, lin.id)).resolves.toMatchObject(
      { conversationId: h.sim.personalConversationId(lin), learnedFrom: "personal" },
    );
    expect(welcomesTo(lin)).toHaveLength(1);
  });

  it("treats an emulator's own user ids (not 29:) as users, as the Agents Playground needs", async () => {
    const user = h.sim.addUser();
    const activity = {
      ...h.sim.activities.personalInstall(user),
      from: { id: "user-id-0", name: "Alex Wilber" },
    };
    expect((await h.post(activity)).status).toBe(200);
    await expect(
      h.services.users.findByTeamsUserId(h.sim.tenantId, "user-id-0"),
    ).resolves.toMatchObject({ name: "Alex Wilber", conversationId: activity.conversation.id });
    expect(h.sim.activitiesIn(activity.conversation.id).filter(isWelcome)).toHaveLength(1);
  });
});
