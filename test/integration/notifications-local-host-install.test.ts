import { TableFactory } from "../../shared/store/table-factory";
import { WelcomeLedger } from "../../shared/store/welcome-ledger";
import { startGraphSimulator } from "../graph-simulator";
import type { GraphSimulator } from "../graph-simulator/simulator";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { type FunctionsLocalHost, startFunctionsLocalHost } from "../support/functions-local-host";

const TEAMS_APP_ID = "0f4e8d2a-6c1b-4a9e-8f3d-7b5c2e1a9d60";

/**
 * `npm start` with `ProactiveInstall=true` and `GraphEndpoint` on a loopback Graph stand-in
 * (what `npm run graph-sim` runs): the real function modules behind the local host, the local
 * queues, and a user whom Herald has never seen, who receives the notification.
 */
describe("the local host with proactive install against a loopback Graph", () => {
  let local: FunctionsLocalHost;
  let teams: TeamsSimulator;
  let graph: GraphSimulator;

  beforeAll(async () => {
    teams = await startTeamsSimulator();
    graph = await startGraphSimulator({
      teams,
      installActivities: "immediate",
      enforceRateLimits: true,
    });
    graph.publishApp({ externalId: TEAMS_APP_ID });
    local = await startFunctionsLocalHost({
      ProactiveInstall: "true",
      TeamsAppId: TEAMS_APP_ID,
      GraphEndpoint: graph.endpoint,
    });
    graph.setBotEndpoint(`${local.host.http.origin}/api/messages`);
  });

  afterAll(async () => {
    await graph.close();
    await local.close();
    await teams.close();
  });

  it("delivers to a user who never installed the bot, installing the app once, with no welcome", async () => {
    const person = graph.addUser({ displayName: "Adele Vance" });
    const id = `local-install-${Date.now()}`;
    expect(
      await local.notify(
        teams.tenantId,
        id,
        { userPrincipalName: person.userPrincipalName },
        "Hello from the local host",
      ),
    ).toBe(202);

    await teams.waitFor(
      () => {
        const user = graph.user(person.id)?.teamsUser;
        return user !== undefined && teams.messagesToUser(user).length > 0;
      },
      { timeoutMs: 20_000, description: "the notification in the new user's 1:1 chat" },
    );
    expect(await local.completedStatus(id)).toMatchObject({
      id,
      state: "completed",
      counts: { total: 1, sent: 1 },
    });
    await graph.settled();
    // The install's events reached the bot, and its welcome work ran (skipped: Herald installed).
    const teamsUser = graph.user(person.id)!.teamsUser!;
    expect(
      graph.postedActivities.filter((a) => a.userId === person.id).map((a) => a.status),
    ).toEqual([200, 200]);
    const welcomes = new WelcomeLedger(new TableFactory(local.config), { leaseMs: 60_000 });
    const subject = {
      scope: "personal" as const,
      tenantId: teams.tenantId,
      teamsUserId: teamsUser.id,
    };
    let welcome = await welcomes.get(subject);
    for (let i = 0; i < 400 && welcome === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      welcome = await welcomes.get(subject);
    }
    expect(welcome?.state).toBe("skipped");
    expect(teams.messagesToUser(teamsUser).map((m) => m.text)).toEqual([
      "Hello from the local host",
    ]);
    expect(graph.countRoute("installApp", 201)).toBe(1);
  }, 60_000);
});
