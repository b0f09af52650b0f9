import { CARD_REFERENCE_KEY } from "../../shared/model/card-actions";
import type { NotificationStatus } from "../../shared/notifications/status";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { type FunctionsLocalHost, startFunctionsLocalHost } from "../support/functions-local-host";

/**
 * The `npm start` path end to end: the real function modules (their own composition roots,
 * reading settings from the environment) behind the local host, the local durable queue
 * drained into the Service Bus handler, and the Teams simulator as Teams (which also posts
 * both kinds of click on a card's buttons).
 */
type Data = Record<string, unknown>;

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

  it("answers an Action.Execute click with the request's card and records an Action.Submit click, both shown in the status", async () => {
    const user = sim.addUser();
    expect((await sim.send(sim.activities.personalInstall(user))).status).toBe(200);
    const id = `local-card-${Date.now()}`;
    const posted = await fetch(`${local.host.http.origin}/api/notifications`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        schemaVersion: 1,
        id,
        tenantId: sim.tenantId,
        recipients: [{ userPrincipalName: user.userPrincipalName }],
        message: {
          adaptiveCard: {
            type: "AdaptiveCard",
            version: "1.5",
            body: [{ type: "TextBlock", text: "Approve order 4711?" }],
            actions: [
              { type: "Action.Execute", title: "Approve", verb: "approve", data: { order: 4711 } },
              { type: "Action.Submit", title: "Comment", data: { verb: "comment" } },
            ],
          },
        },
        actions: {
          approve: {
            card: {
              type: "AdaptiveCard",
              version: "1.5",
              body: [{ type: "TextBlock", text: "Approved" }],
            },
          },
          comment: { text: "Noted" },
        },
      }),
    });
    expect(posted.status).toBe(202);
    const cardMessage = () =>
      sim
        .messagesToUser(user)
        .find((m) => JSON.stringify(m.activity).includes("Approve order 4711"));
    await sim.waitFor(() => cardMessage() !== undefined, {
      timeoutMs: 10_000,
      description: "the card in the user's 1:1 chat",
    });
    const card = (
      cardMessage()!.activity.attachments as { content: { actions: { data: Data }[] } }[]
    )[0]!.content;
    const [execute, submit] = card.actions.map((a) => a.data);
    expect(execute?.[CARD_REFERENCE_KEY]).toBeDefined();

    const executed = await sim.send(
      sim.activities.executeClick(user, { verb: "approve", data: execute }),
    );
    const submitted = await sim.send(sim.activities.submitClick(user, { ...submit, note: "ok" }));

    expect(executed).toMatchObject({
      status: 200,
      body: { statusCode: 200, type: "application/vnd.microsoft.card.adaptive" },
    });
    expect(submitted.status).toBe(200);
    const status = (await (
      await fetch(`${local.host.http.origin}/api/notifications/${id}`)
    ).json()) as NotificationStatus;
    expect(status.recipients[0]?.actions?.map((a) => a.verb)).toEqual(["approve", "comment"]);
    // The Submit click was not taken for a chat message: no help text comes back.
    const help = () => sim.messagesToUser(user).filter((m) => m.text?.startsWith("I'm Herald"));
    expect(help()).toHaveLength(0);
  });
});
