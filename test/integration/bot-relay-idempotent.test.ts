import { type RelayClaim, type RelayKey, RelayLedger } from "../../shared/store/relay-ledger";
import type { SimUser, TeamsActivity } from "../simulator";
import { type BotHarness, startBotHarness } from "../support/bot-harness";
import type { RecordedMessage } from "../support/memory-queue";

const BROKER_WINDOW_MS = 600_000;

describe("Bot endpoint, @mention relay under redelivery", () => {
  let h: BotHarness;

  beforeEach(async () => {
    h = await startBotHarness();
  });

  afterEach(async () => {
    jest.restoreAllMocks();
    await h.close();
  });

  function ledger(): RelayLedger {
    return new RelayLedger(h.tables, { leaseMs: h.config.welcomeLeaseMs, clock: h.now });
  }

  function keyOf(mention: TeamsActivity, user: SimUser): RelayKey {
    return {
      tenantId: h.sim.tenantId,
      conversationId: mention.conversation.id,
      activityId: mention.id ?? "",
      target: { kind: "user", teamsUserId: user.id },
    };
  }

  async function claimAsAnotherInvocation(key: RelayKey): Promise<RelayClaim> {
    const outcome = await ledger().claim(key);
    if (outcome.kind !== "claimed") throw new Error("the other invocation could not claim");
    return outcome.claim;
  }

  function relayedTo(user: SimUser, text: string): number {
    return h.sim.messagesToUser(user).filter((m) => m.text?.includes(text)).length;
  }

  function repliesTo(mention: TeamsActivity): string[] {
    return h.sim
      .activitiesIn(mention.conversation.id)
      .filter((a) => a.replyToId === mention.id)
      .map((a) => a.text ?? "");
  }

  function relayItems(): RecordedMessage[] {
    return h.queue.waiting.filter((m) => m.applicationProperties?.heraldKind === "relay");
  }

  async function teamOfThree(): Promise<{
    team: ReturnType<BotHarness["sim"]["addTeam"]>;
    asker: SimUser;
    ada: SimUser;
    grace: SimUser;
  }> {
    const team = h.sim.addTeam({ name: "Platform", memberCount: 3 });
    const [asker, ada, grace] = team.members as [SimUser, SimUser, SimUser];
    await h.post(h.sim.activities.personalInstall(ada));
    await h.post(h.sim.activities.teamInstall(team, asker));
    return { team, asker, ada, grace };
  }

  it("sends one message per user and one reply when Teams delivers the activity three times, once after the broker's window", async () => {
    const { team, asker, ada, grace } = await teamOfThree();
    const mention = h.sim.activities.channelMention(team, asker, [ada, grace], "build green");

    await h.post(mention);
    await h.post(mention); // within the window: the broker drops the copy
    h.advance(BROKER_WINDOW_MS + 60_000);
    const ranBefore = h.queue.sent.length;
    await h.post(mention); // after it: a new work item runs, and the ledger stops it

    expect(h.queue.sent.length).toBeGreaterThan(ranBefore);
    expect(relayedTo(ada, "build green")).toBe(1);
    expect(relayedTo(grace, "build green")).toBe(1);
    expect(repliesTo(mention)).toHaveLength(1);
  });

  it("after a crash between two sends, does not send to the first target again, sends to the second once and replies once", async () => {
    const { team, asker, ada, grace } = await teamOfThree();
    const mention = h.sim.activities.channelMention(team, asker, [ada, grace], "rollback done");
    await h.post(mention, { drain: false });
    const [item] = relayItems();
    if (item === undefined) throw new Error("no relay work item queued");
    h.queue.remove([item]);
    // The process "dies" once Ada's message is out and recorded, before Grace is resolved.
    const users = h.services.users;
    const find = users.findByTeamsUserId.bind(users);
    let died = false;
    jest.spyOn(users, "findByTeamsUserId").mockImplementation(async (tenantId, teamsUserId) => {
      if (teamsUserId !== grace.id || died) return find(tenantId, teamsUserId);
      died = true;
      while ((await ledger().get(keyOf(mention, ada)))?.state !== "sent") {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      throw new Error("simulated process death");
    });

    await expect(h.runWork(item)).rejects.toThrow("simulated process death");
    await h.runWork(item, 2); // the broker's redelivery: Grace's dead claim is still leased
    h.advance(h.config.welcomeLeaseMs + 5_000);
    await h.drainWork();

    expect(relayedTo(ada, "rollback done")).toBe(1);
    expect(relayedTo(grace, "rollback done")).toBe(1);
    expect(repliesTo(mention)).toEqual([expect.stringContaining(`${ada.name} and ${grace.name}`)]);
  });

  it("defers instead of sending while another invocation holds a live claim on a target", async () => {
    const { team, asker, ada, grace } = await teamOfThree();
    const mention = h.sim.activities.channelMention(team, asker, [ada, grace], "deploy frozen");
    await claimAsAnotherInvocation(keyOf(mention, ada));

    await h.post(mention);

    expect(relayedTo(ada, "deploy frozen")).toBe(0);
    expect(relayedTo(grace, "deploy frozen")).toBe(1);
    expect(repliesTo(mention)).toHaveLength(0);
    expect(relayItems().map((m) => m.scheduledFor !== undefined)).toEqual([true]);
  });

  it("reports the other invocation's send in its one reply once the deferred relay runs", async () => {
    const { team, asker, ada, grace } = await teamOfThree();
    const mention = h.sim.activities.channelMention(team, asker, [ada, grace], "deploy frozen");
    const other = await claimAsAnotherInvocation(keyOf(mention, ada));
    await h.post(mention);
    await ledger().settle(other, { state: "sent" });

    h.advance(h.config.welcomeLeaseMs + 5_000);
    await h.drainWork();

    expect(relayedTo(ada, "deploy frozen")).toBe(0);
    expect(relayedTo(grace, "deploy frozen")).toBe(1);
    expect(repliesTo(mention)).toEqual([expect.stringContaining(`${ada.name} and ${grace.name}`)]);
  });
});
