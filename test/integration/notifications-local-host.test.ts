import { startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { type FunctionsLocalHost, startFunctionsLocalHost } from "../support/functions-local-host";

/**
 * The `npm start` path end to end: the real function modules (their own composition roots,
 * reading settings from the environment) behind the local host, the local durable queue
 * drained into the Service Bus handler, and the Teams simulator as Teams.
 */
describe("notifications through the local host", () => {
  let local: FunctionsLocalHost;
  let sim: TeamsSimulator;

  beforeAll(async () => {
    local = await startFunctionsLocalHost();
    sim = await startTeamsSimulator({ botEndpoint: `${local.host.http.origin}/api/messages` });
  });

  afterAll(async () => {
    await local.close();
    await sim.close();
  });

  it("takes a request over HTTP, drains it from the local queue and delivers it to the installed user", async () => {
    const user = sim.addUser();
    expect((await sim.send(sim.activities.personalInstall(user))).status).toBe(200);

    const id = `local-${Date.now()}`;
    expect(
      await local.notify(
        sim.tenantId,
        id,
        { userPrincipalName: user.userPrincipalName },
        "Hello from the local host",
      ),
    ).toBe(202);
    // Its first request built the services; without MicrosoftAppId they said so, loudly.
    expect(local.startupWarnings).toEqual([
      expect.stringMatching(/^BOT AUTHENTICATION IS OFF: MicrosoftAppId is not set/),
    ]);

    await sim.waitFor(
      () => sim.messagesToUser(user).some((a) => a.text === "Hello from the local host"),
      { timeoutMs: 10_000, description: "the notification in the user's 1:1 chat" },
    );
    expect(await local.completedStatus(id)).toMatchObject({
      id,
      state: "completed",
      counts: { total: 1, sent: 1 },
    });
  });
});
