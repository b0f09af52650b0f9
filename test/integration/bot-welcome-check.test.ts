import { Welcomer } from "../../shared/bot/welcomes";
import { memoryLogger } from "../../shared/logging";
import { type QueuePort, WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { WelcomeLedger } from "../../shared/store/welcome-ledger";
import type { SimUser } from "../simulator";
import { type BotHarness, startBotHarness } from "../support/bot-harness";
import type { RecordedMessage } from "../support/memory-queue";

const ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive";

function isWelcome(activity: { attachments: readonly unknown[] | undefined }): boolean {
  return (activity.attachments ?? []).some(
    (a) => (a as { contentType?: string }).contentType === ADAPTIVE_CARD,
  );
}

/**
 * A welcome whose sender is gone is sent by the `welcome-check` work item its claim scheduled
 * on the work queue: the welcome work schedules it, the work queue trigger runs it, with no
 * further activity from the user, on the service URL of the stored reference.
 */
describe("welcome lease checks on the work queue", () => {
  let h: BotHarness;
  let logs: { level: string; text: string }[];

  beforeEach(async () => {
    h = await startBotHarness({ settings: { WelcomeLeaseSeconds: "1" }, manualClock: true });
    logs = [];
  });

  afterEach(async () => {
    await h.close();
  });

  const welcomesTo = (user: SimUser) => h.sim.messagesToUser(user).filter(isWelcome);
  const personal = (user: SimUser) =>
    ({ scope: "personal", tenantId: h.sim.tenantId, teamsUserId: user.id }) as const;

  /** Hands one work item to the work queue trigger as the Functions host does. */
  async function deliver(message: Pick<RecordedMessage, "body" | "applicationProperties">) {
    const lines = await h.runWork({ sequence: 0, sentAt: new Date(), ...message });
    for (const line of lines) {
      const at = line.indexOf(": ");
      logs.push({ level: line.slice(0, at), text: line.slice(at + 2) });
    }
  }

  /** Takes the queued welcome checks (every message on the queue must be one). */
  function takeChecks(): RecordedMessage[] {
    const taken = h.queue.takeAll();
    for (const m of taken) {
      expect(m.applicationProperties?.[WORK_KIND_PROPERTY]).toBe("welcome-check");
      expect(m.scheduledFor).toBeDefined();
    }
    return taken;
  }

  /** Lets the broker's clock reach each check's scheduled time and runs it, until none is left. */
  async function runChecksAsTheyFallDue(maxRounds = 10): Promise<number> {
    let ran = 0;
    for (let round = 0; round < maxRounds; round++) {
      const checks = takeChecks();
      if (checks.length === 0) return ran;
      for (const check of checks) {
        const ahead = check.scheduledFor!.getTime() - h.now().getTime();
        if (ahead > 0) h.advance(ahead);
        await deliver(check);
        ran += 1;
      }
    }
    throw new Error("welcome checks still scheduled after 10 rounds");
  }

  it("recovers a claim whose sender died before sending, with no further activity from the user", async () => {
    const joan = h.sim.addUser({ name: "Joan Clarke" });
    // Another instance claimed the welcome and crashed before sending it (or scheduling its check).
    const crashed = new WelcomeLedger(h.tables, { leaseMs: h.config.welcomeLeaseMs, clock: h.now });
    expect((await crashed.claim(personal(joan))).kind).toBe("claimed");

    // Teams' second install event sees the live claim: no welcome, but a check for its lease end.
    expect((await h.post(h.sim.activities.personalInstall(joan))).status).toBe(200);
    expect(welcomesTo(joan)).toHaveLength(0);
    const [check] = h.queue.waiting;
    const record = await crashed.get(personal(joan));
    expect(check?.scheduledFor!.getTime()).toBeGreaterThan(Date.parse(record!.leaseUntil));
    // The check names its subject only: where it goes comes from the stored reference.
    expect(check?.body).toEqual({
      scope: "personal",
      tenantId: h.sim.tenantId,
      teamsUserId: joan.id,
      round: 1,
    });
    expect(check?.sessionId).toBe(h.sim.tenantId.toLowerCase());

    await runChecksAsTheyFallDue();
    expect(welcomesTo(joan)).toHaveLength(1);
    expect(JSON.stringify(welcomesTo(joan)[0]!.attachments)).toContain("Hi Joan");
    await expect(crashed.get(personal(joan))).resolves.toMatchObject({
      state: "sent",
      activityId: welcomesTo(joan)[0]!.id,
    });
    expect(h.sim.messagesToUser(joan)).toHaveLength(1);
  });

  it("recovers a welcome whose sender crashed mid-send through the check its own claim scheduled", async () => {
    const ida = h.sim.addUser({ name: "Ida Rhodes" });
    await h.herald.bot().users.upsert({
      tenantId: h.sim.tenantId,
      teamsUserId: ida.id,
      name: "Ida Rhodes",
      serviceUrl: h.sim.serviceUrl,
      conversationId: h.sim.personalConversationId(ida),
      learnedFrom: "personal",
    });
    // An instance that claims, schedules its check, then dies while sending (the send never ends).
    let checkScheduled!: () => void;
    const scheduled = new Promise<void>((resolve) => (checkScheduled = resolve));
    const queue: QueuePort = {
      enqueue: (messages) => h.queue.enqueue(messages),
      schedule: async (message, at) => {
        await h.queue.schedule(message, at);
        checkScheduled();
      },
    };
    const doomed = new Welcomer(
      new WelcomeLedger(h.tables, { leaseMs: h.config.welcomeLeaseMs, clock: h.now }),
      { queue, clock: h.now },
    );
    void doomed.ensureWelcome(
      () => new Promise<string>(() => undefined),
      {
        scope: "personal",
        tenantId: h.sim.tenantId,
        teamsUserId: ida.id,
        name: "Ida Rhodes",
        conversationId: h.sim.personalConversationId(ida),
        serviceUrl: h.sim.serviceUrl,
      },
      memoryLogger(),
    );
    await scheduled;
    expect(h.queue.waiting).toHaveLength(1);
    expect(welcomesTo(ida)).toHaveLength(0);

    await runChecksAsTheyFallDue();
    expect(welcomesTo(ida)).toHaveLength(1);
    expect(h.sim.messagesToUser(ida)).toHaveLength(1);
  });

  it("sends nothing when the checked welcome was already sent", async () => {
    const ada = h.sim.addUser({ name: "Ada Lovelace" });
    await h.post(h.sim.activities.personalInstall(ada));
    expect(welcomesTo(ada)).toHaveLength(1);
    expect(h.queue.waiting).toHaveLength(1);
    const callsToTeams = h.sim.requests.length;

    expect(await runChecksAsTheyFallDue()).toBe(1);
    expect(h.sim.requests).toHaveLength(callsToTeams);
    expect(h.sim.messagesToUser(ada)).toHaveLength(1);
  });

  it("calls Teams once for a welcome answered 503, answers the activity, and sends the welcome through the scheduled check", async () => {
    const kat = h.sim.addUser({ name: "Katherine Johnson" });
    const chat = h.sim.personalConversationId(kat);
    const sendsToKat = () =>
      h.sim.requests
        .filter((r) => r.route === "sendActivity" && r.conversationId === chat)
        .map((r) => r.status);
    // botbuilder's own connector client would retry this 503 inside the call (and answer Teams
    // only after its back-off); Herald's sends are single-attempt, the check retries instead.
    h.sim.failNext("sendActivity", { status: 503, user: kat });

    expect((await h.post(h.sim.activities.personalInstall(kat))).status).toBe(200);
    // What Teams' send route saw while the activity was being handled: one call, the 503.
    expect(sendsToKat()).toEqual([503]);
    expect(welcomesTo(kat)).toHaveLength(0);
    await expect(
      new WelcomeLedger(h.tables, { leaseMs: 1000, clock: h.now }).get(personal(kat)),
    ).resolves.toMatchObject({
      state: "released",
      lastError: expect.stringContaining("503") as unknown,
    });

    expect(await runChecksAsTheyFallDue()).toBeGreaterThanOrEqual(1);
    expect(welcomesTo(kat)).toHaveLength(1);
    expect(h.sim.messagesToUser(kat)).toHaveLength(1);
    expect(sendsToKat()).toEqual([503, 201]);
  });

  it("recovers the team welcome in the General channel the same way", async () => {
    const team = h.sim.addTeam({ name: "Research", memberCount: 2 });
    const crashed = new WelcomeLedger(h.tables, { leaseMs: h.config.welcomeLeaseMs, clock: h.now });
    const subject = { scope: "team", tenantId: h.sim.tenantId, teamId: team.id } as const;
    expect((await crashed.claim(subject)).kind).toBe("claimed");

    await h.post(h.sim.activities.teamInstall(team, team.members[0]!));
    expect(h.sim.activitiesIn(team.generalChannelId).filter(isWelcome)).toHaveLength(0);
    const checks = h.queue
      .takeAll()
      .filter((m) => m.applicationProperties?.[WORK_KIND_PROPERTY] === "welcome-check");
    expect(checks).toHaveLength(1);
    h.advance(checks[0]!.scheduledFor!.getTime() - h.now().getTime());
    await deliver(checks[0]!);

    const welcomes = h.sim.activitiesIn(team.generalChannelId).filter(isWelcome);
    expect(welcomes).toHaveLength(1);
    expect(JSON.stringify(welcomes[0]!.attachments)).toContain("Research");
    await expect(crashed.get(subject)).resolves.toMatchObject({ state: "sent" });
  });

  it("checks a live claim again at its lease end, and gives up with an error after five checks", async () => {
    const lin = h.sim.addUser({ name: "Lin Wei" });
    const stuck = new WelcomeLedger(h.tables, { leaseMs: 3_600_000, clock: h.now });
    expect((await stuck.claim(personal(lin))).kind).toBe("claimed");
    await h.post(h.sim.activities.personalInstall(lin));

    // Each check finds the claim still live (its lease is an hour) and schedules the next.
    const rounds: unknown[] = [];
    for (let check = takeChecks()[0]; check !== undefined; check = takeChecks()[0]) {
      rounds.push(check.applicationProperties?.round);
      await deliver(check);
    }
    expect(rounds).toEqual([1, 2, 3, 4, 5]);
    expect(welcomesTo(lin)).toHaveLength(0);
    expect(logs.filter((l) => l.level === "error" && l.text.includes("giving up"))).toHaveLength(1);
  });

  it("drops a malformed welcome-check body with a logged error naming the field", async () => {
    await deliver({
      body: { scope: "personal", tenantId: h.sim.tenantId, round: "first" },
      applicationProperties: { [WORK_KIND_PROPERTY]: "welcome-check" },
    });
    const dropped = logs.find((l) => l.text.includes("Malformed welcome-check work item dropped"));
    expect(dropped?.level).toBe("error");
    expect(dropped?.text).toContain("teamsUserId");
    expect(dropped?.text).toContain("round");
    expect(h.sim.requests).toHaveLength(0);
  });
});
