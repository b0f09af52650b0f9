import type { SimUser } from "../simulator";
import { type BotHarness, startBotHarness } from "../support/bot-harness";

describe("Bot endpoint, @mention relay", () => {
  let h: BotHarness;

  beforeEach(async () => {
    h = await startBotHarness();
  });

  afterEach(async () => {
    await h.close();
  });

  /** The bot's reply in the thread of the channel message. */
  function replyTo(activity: { id: string; conversation: { id: string } }): string {
    const replies = h.sim
      .activitiesIn(activity.conversation.id)
      .filter((a) => a.replyToId === activity.id);
    expect(replies).toHaveLength(1);
    return replies[0]!.text ?? "";
  }

  it("delivers the text, naming who asked, to each mentioned user 1:1 and says so in the channel", async () => {
    const team = h.sim.addTeam({ name: "Platform", memberCount: 3 });
    const [asker, ada, grace] = team.members as [SimUser, SimUser, SimUser];
    // Ada has a 1:1 chat already; Grace is known from the roster only (no conversation yet).
    await h.post(h.sim.activities.personalInstall(ada));
    await h.post(h.sim.activities.teamInstall(team, asker));
    await h.services.syncTeamRoster({ tenantId: h.sim.tenantId, teamId: team.id });
    const createsBefore = h.sim.countRoute("createConversation");

    const mention = h.sim.activities.channelMention(
      team,
      asker,
      [ada, grace],
      "the build is green",
    );
    expect((await h.post(mention)).status).toBe(200);

    for (const user of [ada, grace]) {
      const relayed = h.sim
        .messagesToUser(user)
        .filter((m) => m.text?.includes("the build is green"));
      expect(relayed).toHaveLength(1);
      expect(relayed[0]!.text).toContain(asker.name);
      expect(relayed[0]!.text).not.toContain("<at>");
    }
    expect(h.sim.countRoute("createConversation")).toBe(createsBefore + 1);
    await expect(
      h.services.users.findByTeamsUserId(h.sim.tenantId, grace.id),
    ).resolves.toMatchObject({ conversationId: h.sim.personalConversationId(grace) });
    const reply = replyTo(mention);
    expect(reply).toContain(ada.name);
    expect(reply).toContain(grace.name);
  });

  it("learns a mentioned team member it has not seen yet from Teams and delivers", async () => {
    const team = h.sim.addTeam({ name: "Research", memberCount: 2 });
    const [asker, newcomer] = team.members as [SimUser, SimUser];
    const mention = h.sim.activities.channelMention(team, asker, [newcomer], "welcome aboard");
    expect((await h.post(mention)).status).toBe(200);
    expect(h.sim.messagesToUser(newcomer).some((m) => m.text?.includes("welcome aboard"))).toBe(
      true,
    );
    await expect(
      h.services.users.findByUserPrincipalName(h.sim.tenantId, newcomer.userPrincipalName),
    ).resolves.toMatchObject({ teamsUserId: newcomer.id });
  });

  it("answers clearly, without crashing, for a mentioned user nobody knows", async () => {
    const team = h.sim.addTeam({ name: "Support", memberCount: 2 });
    const [asker, known] = team.members as [SimUser, SimUser];
    const stranger = h.sim.addUser({ name: "Sam Stranger" }); // in the tenant, not in this team
    const mention = h.sim.activities.channelMention(
      team,
      asker,
      [known, stranger],
      "standup moved",
    );
    const response = await h.post(mention);
    expect(response.status).toBe(200);
    expect(h.sim.messagesToUser(stranger)).toHaveLength(0);
    expect(h.sim.messagesToUser(known)).toHaveLength(1);
    const reply = replyTo(mention);
    expect(reply).toMatch(/couldn't reach Sam Stranger: I haven't met them yet/);
    expect(reply).toContain(`Sent your message privately to ${known.name}`);
  });

  it("calls Teams once per relay and reports a failure instead of retrying while Teams waits", async () => {
    const team = h.sim.addTeam({ name: "Ops", memberCount: 3 });
    const [asker, ada, grace] = team.members as [SimUser, SimUser, SimUser];
    // Ada has a 1:1 chat (her relay is a send); Grace has none yet (hers starts with a create).
    await h.post(h.sim.activities.personalInstall(ada));
    await h.post(h.sim.activities.teamInstall(team, asker));
    await h.services.syncTeamRoster({ tenantId: h.sim.tenantId, teamId: team.id });
    const before = h.sim.requests.length;
    // botbuilder's own client would retry each of these inside the request, and succeed.
    h.sim.failNext("sendActivity", { status: 503, user: ada });
    h.sim.failNext("createConversation", { status: 429, retryAfterSeconds: 1 });

    const mention = h.sim.activities.channelMention(team, asker, [ada, grace], "rollback done");
    expect((await h.post(mention)).status).toBe(200);

    const calls = h.sim.requests.slice(before);
    const adaChat = h.sim.personalConversationId(ada);
    expect(
      calls.filter((r) => r.route === "sendActivity" && r.conversationId === adaChat),
    ).toMatchObject([{ status: 503 }]);
    expect(calls.filter((r) => r.route === "createConversation")).toMatchObject([{ status: 429 }]);
    for (const user of [ada, grace]) {
      expect(h.sim.messagesToUser(user).some((m) => m.text?.includes("rollback done"))).toBe(false);
    }
    expect(replyTo(mention)).toMatch(/Delivery to .* failed/);
  });

  it("sends its channel reply once and drops it when Teams answers 429, rather than waiting", async () => {
    const team = h.sim.addTeam({ name: "Infra", memberCount: 2 });
    const [asker, ada] = team.members as [SimUser, SimUser];
    await h.post(h.sim.activities.personalInstall(ada));
    const mention = h.sim.activities.channelMention(team, asker, [ada], "deploy frozen");
    // The reply is posted in the channel thread; botbuilder's client would wait out Retry-After.
    h.sim.failNext("sendActivity", {
      status: 429,
      retryAfterSeconds: 1,
      conversationId: mention.conversation.id,
    });

    expect((await h.post(mention)).status).toBe(200);
    expect(h.sim.messagesToUser(ada).some((m) => m.text?.includes("deploy frozen"))).toBe(true);
    const replies = h.sim.requests.filter(
      (r) => r.route === "sendActivity" && r.conversationId === mention.conversation.id,
    );
    expect(replies.map((r) => r.status)).toEqual([429]);
    expect(
      h.sim.activitiesIn(mention.conversation.id).filter((a) => a.replyToId === mention.id),
    ).toEqual([]);
  });

  it("creates the 1:1 conversation again when the stored one was deleted", async () => {
    const team = h.sim.addTeam({ name: "Sales", memberCount: 2 });
    const [asker, ada] = team.members as [SimUser, SimUser];
    await h.post(h.sim.activities.personalInstall(ada));
    const stale = h.sim.deletePersonalConversation(ada);
    const mention = h.sim.activities.channelMention(team, asker, [ada], "quarter closed");
    expect((await h.post(mention)).status).toBe(200);
    expect(h.sim.countRoute("sendActivity", 404)).toBe(1);
    expect(h.sim.messagesToUser(ada).some((m) => m.text?.includes("quarter closed"))).toBe(true);
    const fresh = h.sim.personalConversationId(ada);
    expect(fresh).not.toBe(stale);
    await expect(h.services.users.findByTeamsUserId(h.sim.tenantId, ada.id)).resolves.toMatchObject(
      {
        conversationId: fresh,
      },
    );
    expect(replyTo(mention)).toContain("Sent your message privately");
  });

  it("explains how to use it when the bot is mentioned with no one else or no text", async () => {
    const team = h.sim.addTeam({ name: "Legal", memberCount: 2 });
    const [asker, other] = team.members as [SimUser, SimUser];
    const alone = h.sim.activities.channelMention(team, asker, [], "hello");
    const empty = h.sim.activities.channelMention(team, asker, [other], "");
    expect((await h.post(alone)).status).toBe(200);
    expect((await h.post(empty)).status).toBe(200);
    expect(replyTo(alone)).toMatch(/@mention me and one or more colleagues/);
    expect(replyTo(empty)).toMatch(/@mention me and one or more colleagues/);
    expect(h.sim.messagesToUser(other)).toHaveLength(0);
  });
});
