import type { HttpHandler } from "@azure/functions";

import { printStatus } from "../../shared/cli/status-command";
import type { HeraldServices } from "../../shared/composition";
import {
  BotbuilderConnector,
  botFrameworkAuthentication,
} from "../../shared/connector/botbuilder-connector";
import type { TeamsConnector } from "../../shared/connector/teams-connector";
import { WelcomeLedger } from "../../shared/store/welcome-ledger";
import { startGraphSimulator } from "../graph-simulator";
import type { GraphSimulator } from "../graph-simulator/simulator";
import type { GraphSimUser } from "../graph-simulator/types";
import { type SimUser, startTeamsSimulator } from "../simulator";
import { type BotEndpoint, startBotEndpoint } from "../support/bot-endpoint";
import { NotificationsHarness } from "./notifications-harness";

const TEAMS_APP_ID = "6d2f3b1e-8a4c-4f7e-9b2d-1c5e7a9f3b40";

/**
 * Users Herald has never seen, reached by installing the app through Microsoft Graph: the real
 * Graph client against the Graph simulator, the real bot endpoint over HTTP (which the Graph
 * simulator posts the install's `installationUpdate` and `conversationUpdate` to, as Teams does),
 * Azurite, and the Teams simulator receiving what is sent.
 */
describe("notifications to users who never opened the bot (proactive install)", () => {
  let graph: GraphSimulator;
  let h: NotificationsHarness;
  let endpoint: BotEndpoint;
  /** Member lookups still to fail with a non-HTTP error: the process "crashes" there. */
  let crashOnMemberLookup = 0;
  let catalogAppId: string;

  beforeAll(async () => {
    const teams = await startTeamsSimulator();
    // The endpoint is served before Herald exists: the Graph simulator needs its URL first.
    const wiring: { herald?: HeraldServices } = {};
    const messages: HttpHandler = (request, context) => wiring.herald!.messages(request, context);
    endpoint = await startBotEndpoint(messages);
    // Teams' install events are held until a test releases them: each test decides which of
    // the two ways to the chat (the events, or Graph's chat) comes first.
    graph = await startGraphSimulator({
      teams,
      botEndpoint: endpoint.url,
      installActivities: "manual",
    });
    catalogAppId = graph.publishApp({ externalId: TEAMS_APP_ID }).id;

    const real: { connector?: TeamsConnector } = {};
    const connector: TeamsConnector = {
      createPersonalConversation: (input) => real.connector!.createPersonalConversation(input),
      updateActivity: (input) => real.connector!.updateActivity(input),
      deleteActivity: (input) => real.connector!.deleteActivity(input),
      sendActivity: (input) => real.connector!.sendActivity(input),
      getMember: (input) => {
        if (crashOnMemberLookup > 0) {
          crashOnMemberLookup -= 1;
          return Promise.reject(new TypeError("simulated crash"));
        }
        return real.connector!.getMember(input);
      },
    };
    h = await NotificationsHarness.start(
      {
        GraphEndpoint: graph.endpoint,
        ProactiveInstall: "true",
        TeamsAppId: TEAMS_APP_ID,
        MaxDeliveryAttempts: "4",
      },
      { connector },
      { sim: teams },
    );
    wiring.herald = h.herald;
    real.connector = new BotbuilderConnector(botFrameworkAuthentication(h.config), undefined, {
      botId: teams.botId,
    });
    // Someone in the tenant is known, so Herald knows the tenant's service URL.
    const colleague = teams.addUser();
    await h.seedUser(colleague, teams.personalConversationId(colleague));
  });
  afterAll(async () => {
    await graph.close();
    await endpoint.close();
    await h.close();
  });

  beforeEach(() => {
    graph.reset();
    h.queue.takeAll();
  });

  /** The Teams user Graph's install created for a Graph user. */
  function teamsUserOf(user: GraphSimUser): SimUser {
    const linked = graph.user(user.id)?.teamsUser;
    if (linked === undefined) throw new Error("the app was not installed for this user");
    return linked;
  }

  async function welcomeOf(user: SimUser) {
    return new WelcomeLedger(h.tables, { leaseMs: 60_000 }).get({
      scope: "personal",
      tenantId: h.sim.tenantId,
      teamsUserId: user.id,
    });
  }

  /** Teams posts the install's events; the bot's work they queue (the welcome) runs. */
  async function installEventsArrive(): Promise<void> {
    await graph.releaseInstallActivities();
    await graph.settled();
    await h.drain();
  }

  it("installs the app for a user named by UPN, sends exactly the notification (no welcome), and records why no welcome went out", async () => {
    const person = graph.addUser();
    const request = h.request({ recipients: [{ userPrincipalName: person.userPrincipalName }] });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    await installEventsArrive();

    const teamsUser = teamsUserOf(person);
    const received = h.sim.messagesToUser(teamsUser);
    expect(received).toHaveLength(1);
    expect(received[0]?.text).toBe("Your order **42** shipped");
    expect(graph.countRoute("installApp", 201)).toBe(1);
    expect(await h.services.status.get(request.id)).toMatchObject({
      state: "completed",
      counts: { sent: 1 },
      recipients: [{ state: "sent", teamsUserId: teamsUser.id }],
    });
    const welcome = await welcomeOf(teamsUser);
    expect(welcome?.state).toBe("skipped");
    expect(welcome?.reason).toMatch(/Herald installed the app for this user/);
    expect(welcome?.requestId).toBe(request.id);
    // The bot recorded the user under their UPN too: the next notification needs no Graph.
    expect(
      await h.users.findByUserPrincipalName(h.sim.tenantId, person.userPrincipalName),
    ).toMatchObject({
      teamsUserId: teamsUser.id,
      conversationId: h.sim.personalConversationId(teamsUser),
    });

    graph.reset();
    const second = h.request({
      recipients: [{ userPrincipalName: person.userPrincipalName.toUpperCase() }],
    });
    await h.deliver({ body: second, messageId: second.id });
    await h.drain();
    expect(graph.requests).toHaveLength(0);
    expect(h.sim.messagesToUser(teamsUser)).toHaveLength(2);
  });

  it("installs the app for a user named by AAD id and sends once the install's conversationUpdate names the chat, showing each step in the status", async () => {
    const person = graph.addUser();
    // Teams has not opened the chat yet: Graph's installed app has none to show.
    graph.setChat(person, { kind: "pending", chatId: "19:not-yet@unq.gbl.spaces" });
    const teamsCallsBefore = h.sim.requests.length;
    const request = h.request({ recipients: [{ aadObjectId: person.id }] });
    await h.deliver({ body: request, messageId: request.id });

    expect(graph.countRoute("installApp", 201)).toBe(1);
    expect(graph.countRoute("getUser")).toBe(0);
    const waiting = await h.services.status.get(request.id);
    expect(waiting).toMatchObject({
      state: "in-progress",
      recipients: [{ state: "pending", step: "waiting-for-chat" }],
    });
    let printed = "";
    printStatus(waiting!, {
      stdout: { write: (chunk: string) => (printed += chunk) },
      stderr: { write: () => true },
    });
    expect(printed).toMatch(
      /pending +\S+ +attempts 0 +app installed, waiting for Teams to open the chat/,
    );
    // The first check finds no chat yet and looks again.
    await h.deliverQueued(h.queue.takeAll()[0]!);
    expect((await h.services.status.get(request.id))?.recipients[0]?.step).toBe("waiting-for-chat");

    await installEventsArrive();
    const teamsUser = teamsUserOf(person);
    expect(h.sim.messagesToUser(teamsUser)).toHaveLength(1);
    expect(graph.countRoute("installApp")).toBe(1);
    expect(await h.services.status.get(request.id)).toMatchObject({
      state: "completed",
      counts: { sent: 1 },
    });
    expect((await welcomeOf(teamsUser))?.state).toBe("skipped");
    // Graph told Herald who they are: neither the endpoint nor the welcome work asks Teams.
    const teamsCalls = h.sim.requests.slice(teamsCallsBefore).map((r) => r.route);
    expect(teamsCalls).toEqual(["sendActivity"]);
    // The LOB app heard each step: the install, then the message, then the request's end.
    const events = h.topic.sent
      .map((m) => m.body as { type: string; source: string; data: Record<string, unknown> })
      .filter((e) => e.source.endsWith(`/notifications/${request.id}`));
    expect(events.map((e) => e.type)).toEqual([
      "herald.notification.accepted",
      "herald.delivery.installed",
      "herald.delivery.sent",
      "herald.notification.completed",
    ]);
    expect(events[1]?.data).toMatchObject({
      state: "pending",
      step: "waiting-for-chat",
      installedAt: expect.any(String) as unknown,
    });
  });

  it("reschedules after Graph's Retry-After when the install is throttled, then delivers", async () => {
    const person = graph.addUser();
    graph.failNext("installApp", { status: 429, retryAfter: 7 });
    const request = h.request({ recipients: [{ aadObjectId: person.id }] });
    // Before the call: the clock also runs on real time, which passes while the work runs.
    const handedOverAt = h.clock.now().getTime();
    await h.deliver({ body: request, messageId: request.id });

    const [again] = h.queue.waiting;
    expect(again?.applicationProperties?.heraldKind).toBe("delivery");
    expect(again!.scheduledFor!.getTime() - handedOverAt).toBeGreaterThanOrEqual(7_000);
    const status = await h.services.status.get(request.id);
    expect(status?.recipients[0]).toMatchObject({ state: "pending", step: "installing" });
    expect(status?.recipients[0]?.lastError).toMatch(/429/);
    expect(status?.recipients[0]?.nextAttemptAt).toBeDefined();

    await h.drain();
    await installEventsArrive();
    expect(h.sim.messagesToUser(teamsUserOf(person))).toHaveLength(1);
    expect(graph.countRoute("installApp", 201)).toBe(1);
    expect((await h.services.status.get(request.id))?.counts.sent).toBe(1);
  });

  it("retries an install Graph answered 200 with a body that is not JSON, as scheduled work, then delivers", async () => {
    const person = graph.addUser();
    graph.failNext("installApp", { status: 200, rawBody: "<html>proxy</html>" });
    const request = h.request({ recipients: [{ aadObjectId: person.id }] });
    const handedOverAt = h.clock.now().getTime();
    await h.deliver({ body: request, messageId: request.id });

    const status = await h.services.status.get(request.id);
    expect(status?.recipients[0]).toMatchObject({
      state: "pending",
      step: "installing",
      attempts: 1,
    });
    expect(status?.recipients[0]?.lastError).toMatch(/not JSON/);
    const [again] = h.queue.waiting;
    // The first retry's back-off is at least 2 s.
    expect(again!.scheduledFor!.getTime() - handedOverAt).toBeGreaterThanOrEqual(2_000);

    await h.drain();
    await installEventsArrive();
    expect(h.sim.messagesToUser(teamsUserOf(person))).toHaveLength(1);
    expect((await h.services.status.get(request.id))?.counts.sent).toBe(1);
  });

  it("ends an install Graph keeps answering unreadably failed after the attempt budget, saying so", async () => {
    const person = graph.addUser();
    graph.failNext("installApp", { status: 200, rawBody: "<html>proxy</html>", times: 10 });
    const request = h.request({ recipients: [{ aadObjectId: person.id }] });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();

    const status = await h.services.status.get(request.id);
    expect(status).toMatchObject({ state: "completed", counts: { failed: 1 } });
    expect(status?.recipients[0]).toMatchObject({ attempts: 4 });
    expect(status?.recipients[0]?.lastError).toMatch(/not JSON.*gave up after 4 attempts/);
    expect(graph.countRoute("installApp")).toBe(4);
  });

  it("installs once for a never-seen person named by UPN and by AAD id, and sends one copy", async () => {
    const person = graph.addUser();
    const request = h.request({
      recipients: [{ userPrincipalName: person.userPrincipalName }, { aadObjectId: person.id }],
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    await installEventsArrive();

    expect(graph.countRoute("installApp")).toBe(1);
    expect(h.sim.messagesToUser(teamsUserOf(person))).toHaveLength(1);
    const status = await h.services.status.get(request.id);
    expect(status).toMatchObject({
      state: "completed",
      counts: { total: 2, sent: 1, duplicate: 1 },
    });
    const sent = status?.recipients.find((r) => r.state === "sent");
    expect(status?.recipients.find((r) => r.state === "duplicate")?.duplicateOf).toEqual(
      sent?.recipient,
    );
  });

  it("records the user unreachable, naming the permission to grant, when consent to install is missing", async () => {
    const person = graph.addUser();
    graph.revoke("TeamsAppInstallation.ReadWriteSelfForUser.All");
    try {
      const request = h.request({ recipients: [{ aadObjectId: person.id }] });
      await h.deliver({ body: request, messageId: request.id });
      await h.drain();
      const status = await h.services.status.get(request.id);
      expect(status).toMatchObject({ state: "completed", counts: { unreachable: 1 } });
      expect(status?.recipients[0]?.lastError).toMatch(
        /TeamsAppInstallation\.ReadWriteSelfForUser\.All.*npm run grant:graph/,
      );
      expect(graph.user(person.id)?.teamsUser).toBeUndefined();
    } finally {
      graph.grant("TeamsAppInstallation.ReadWriteSelfForUser.All");
    }

    // Herald never installed the app for them: when they install it themselves, they are welcomed.
    const self = h.sim.addUser({
      aadObjectId: person.id,
      userPrincipalName: person.userPrincipalName,
    });
    expect(
      (await h.sim.send(h.sim.activities.personalInstall(self), { endpoint: endpoint.url })).status,
    ).toBe(200);
    await h.drain();
    expect((await welcomeOf(self))?.state).toBe("sent");
    expect(h.sim.messagesToUser(self)).toHaveLength(1);
  });

  it("reaches a user whose app is installed already (409) through the installed app's chat, once", async () => {
    const person = graph.addUser();
    // Installed before Herald knew them (an admin's policy, an earlier Herald whose data is gone).
    const before = await fetch(`${graph.endpoint}/v1.0/users/${person.id}/teamwork/installedApps`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ "teamsApp@odata.bind": graph.bindingFor(catalogAppId) }),
    });
    expect(before.status).toBe(201);
    graph.reset();

    const request = h.request({ recipients: [{ aadObjectId: person.id }] });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    expect(graph.countRoute("installApp", 409)).toBe(1);
    expect(h.sim.messagesToUser(teamsUserOf(person))).toHaveLength(1);
    expect((await h.services.status.get(request.id))?.counts.sent).toBe(1);
  });

  it("records a UPN unreachable, naming User.Read.All, when Herald may not read users", async () => {
    const person = graph.addUser();
    graph.revoke("User.Read.All");
    try {
      const request = h.request({ recipients: [{ userPrincipalName: person.userPrincipalName }] });
      await h.deliver({ body: request, messageId: request.id });
      await h.drain();
      const status = await h.services.status.get(request.id);
      expect(status?.recipients[0]).toMatchObject({ state: "unreachable" });
      expect(status?.recipients[0]?.lastError).toMatch(/User\.Read\.All/);
      expect(graph.countRoute("installApp")).toBe(0);
    } finally {
      graph.grant("User.Read.All");
    }
  });

  it("records a UPN that Graph does not know as unreachable, saying so", async () => {
    const request = h.request({ recipients: [{ userPrincipalName: "nobody@contoso.com" }] });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    const status = await h.services.status.get(request.id);
    expect(status?.recipients[0]).toMatchObject({ state: "unreachable" });
    expect(status?.recipients[0]?.lastError).toMatch(/Microsoft Graph knows no user/);
    expect(status?.recipients[0]?.lastError).not.toMatch(/nobody/);
  });

  it("recovers from a crash between the install and the send: one install, one message", async () => {
    crashOnMemberLookup = 0;
    const person = graph.addUser();
    const request = h.request({ recipients: [{ userPrincipalName: person.userPrincipalName }] });
    await h.deliver({ body: request, messageId: request.id });
    expect(graph.countRoute("installApp", 201)).toBe(1);
    // Teams' events are late: the next check learns the chat from Graph, and the process dies
    // in it, at the member lookup.
    const [check] = h.queue.takeAll();
    h.clock.advanceTo(check!.scheduledFor!);
    crashOnMemberLookup = 1;
    await expect(h.deliverQueued(check!)).rejects.toThrow("simulated crash");
    expect((await h.services.status.get(request.id))?.recipients[0]?.step).toBe("waiting-for-chat");

    // The broker hands the message over again.
    await h.deliverQueued(check!, 2);
    await h.drain();
    await installEventsArrive();
    const teamsUser = teamsUserOf(person);
    expect(h.sim.messagesToUser(teamsUser)).toHaveLength(1);
    expect(graph.countRoute("installApp")).toBe(1);
    expect((await h.services.status.get(request.id))?.counts.sent).toBe(1);
  });

  it("records a Teams user id Herald has never seen as unreachable: Graph cannot resolve it", async () => {
    const request = h.request({ recipients: [{ teamsUserId: "29:1never-seen" }] });
    await h.deliver({ body: request, messageId: request.id });
    const status = await h.services.status.get(request.id);
    expect(status?.recipients[0]).toMatchObject({ state: "unreachable" });
    expect(status?.recipients[0]?.lastError).toMatch(
      /name the user by aadObjectId or userPrincipalName/,
    );
    expect(graph.requests).toHaveLength(0);
  });

  it("records the user unreachable, saying the app is not in the org catalog, when Graph cannot find it", async () => {
    const other = await NotificationsHarness.start(
      {
        GraphEndpoint: graph.endpoint,
        ProactiveInstall: "true",
        TeamsAppId: "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
      },
      {},
      { sim: h.sim },
    );
    const person = graph.addUser();
    const request = other.request({ recipients: [{ aadObjectId: person.id }] });
    await other.deliver({ body: request, messageId: request.id });
    const status = await other.services.status.get(request.id);
    expect(status?.recipients[0]).toMatchObject({ state: "unreachable" });
    expect(status?.recipients[0]?.lastError).toMatch(
      /not in the organization's app catalog.*TeamsAppCatalogId/,
    );
    expect(graph.countRoute("installApp")).toBe(0);
  });

  it("ends the recipient failed, saying why, when Teams never opens the chat after the install", async () => {
    const person = graph.addUser();
    graph.setChat(person, { kind: "pending", chatId: "19:never@unq.gbl.spaces" });
    const request = h.request({ recipients: [{ aadObjectId: person.id }] });
    await h.deliver({ body: request, messageId: request.id });
    // The install's events never come; the checks spread out until the wait is over.
    const checks = await h.drain(8, 60);
    expect(checks.length).toBeGreaterThan(5);
    const status = await h.services.status.get(request.id);
    expect(status).toMatchObject({ state: "completed", counts: { failed: 1 } });
    expect(status?.recipients[0]?.lastError).toMatch(
      /did not open the 1:1 chat with the bot within 10 min/,
    );
    expect(graph.countRoute("installApp")).toBe(1);
  });

  // 40: more than Graph's 30 installs per second, so slots beyond the first second are reserved
  // and their work scheduled. It is CPU-bound bulk work (40 lookups, installs, install events and
  // sends through Azurite and two simulators): no wait in it runs on the wall clock, about 4 s
  // alone, several times that on a loaded 2-core machine; hence its own timeout.
  it("reaches 40 never-seen users named by UPN in one request, looking each up and installing for each once", async () => {
    const people = graph.addUsers(40);
    const request = h.request({
      recipients: people.map((p) => ({ userPrincipalName: p.userPrincipalName })),
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain(8, 40);
    await installEventsArrive();

    expect(graph.countRoute("getUser")).toBe(40);
    expect(graph.countRoute("installApp")).toBe(40);
    for (const person of people) expect(h.sim.messagesToUser(teamsUserOf(person))).toHaveLength(1);
    expect((await h.services.status.get(request.id, { limit: 0 }))?.counts).toMatchObject({
      total: 40,
      sent: 40,
    });
  }, 120_000);

  it("reaches never-seen members of an Entra group and a member also named directly once", async () => {
    const people = [graph.addUser(), graph.addUser(), graph.addUser()];
    const guest = graph.addUser({ userType: "Guest" });
    const group = graph.addGroup({ members: [...people, guest] });
    const request = h.request({
      recipients: [{ groupId: group.id }, { userPrincipalName: people[1]!.userPrincipalName }],
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    await installEventsArrive();

    for (const person of people) expect(h.sim.messagesToUser(teamsUserOf(person))).toHaveLength(1);
    expect(graph.user(guest.id)?.teamsUser).toBeUndefined();
    // One install per person: the member named twice is installed for once, not once and a 409.
    expect(graph.countRoute("installApp")).toBe(3);
    expect(await h.services.status.get(request.id, { limit: 0 })).toMatchObject({
      state: "completed",
      counts: { total: 4, sent: 3, duplicate: 1 },
    });
  });
});
