import type { TeamsConnector } from "../../shared/connector/teams-connector";
import {
  type ClaimHolders,
  localProcessHolders,
  processIdentity,
  remoteHolders,
} from "../../shared/notifications/claim-holders";
import { WORK_KINDS } from "../../shared/notifications/work-items";
import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { type SimUser, startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { deadProcessIdentity } from "../support/dead-process";
import { NotificationsHarness } from "./notifications-harness";

/** A connector whose calls fail with no Teams answer: the process "dies" right after its claim. */
const dying: TeamsConnector = {
  createPersonalConversation: () => Promise.reject(new TypeError("process died")),
  sendActivity: () => Promise.reject(new TypeError("process died")),
  updateActivity: () => Promise.reject(new TypeError("process died")),
  deleteActivity: () => Promise.reject(new TypeError("process died")),
  getMember: () => Promise.reject(new TypeError("process died")),
};

/**
 * A copy of a delivery (another message for the same request and recipient) that meets a
 * `sending` claim decides from the claim's row: a holder known gone is taken over at once, a
 * live one is waited for. Two harnesses on one set of tables play two processes: the first
 * claims and dies before Teams answers, the second runs the copy.
 */
describe("a delivery copy that meets another process's claim", () => {
  let sim: TeamsSimulator;
  /** A live process on this machine that is not this one (the one that started the tests). */
  const live = processIdentity(process.ppid);

  beforeAll(async () => {
    sim = await startTeamsSimulator();
  });
  afterAll(() => sim.close());

  /** A request whose only recipient's row the first process claimed before it died. */
  async function claimedBy(holders: ClaimHolders) {
    const first = await NotificationsHarness.start(
      {},
      { connector: dying, claimHolders: holders },
      { sim },
    );
    const user = sim.addUser();
    await first.seedUser(user, sim.personalConversationId(user));
    const request = first.request({ recipients: [{ teamsUserId: user.id }] });
    await expect(first.deliver({ body: request, messageId: "copy-a" })).rejects.toThrow(
      "process died",
    );
    const key = `teamsUserId:${user.id}`;
    expect(await first.ledger.get(first.key(request.id), key)).toMatchObject({
      state: "sending",
      claimHolder: holders.self,
    });
    return { first, user, request, key };
  }

  /** The second process, on the first's tables. */
  function second(first: NotificationsHarness, holders?: ClaimHolders) {
    return NotificationsHarness.start(
      { TableNamePrefix: first.config.tableNamePrefix },
      holders === undefined ? {} : { claimHolders: holders },
      { sim },
    );
  }

  /** The copy's request through intake, its dispatch run outside or in the tenant's session. */
  async function runCopy(
    h: NotificationsHarness,
    request: Record<string, unknown>,
    session: "outside the session" | "in the session",
  ) {
    await h.invokeIntakeOnly({ body: request, messageId: "copy-b" });
    const [dispatch] = h.queue.takeAll();
    expect(dispatch?.applicationProperties?.[WORK_KIND_PROPERTY]).toBe(WORK_KINDS.dispatch);
    await h.deliverWork({
      body: dispatch!.body,
      messageId: dispatch!.messageId!,
      applicationProperties: dispatch!.applicationProperties!,
      ...(session === "in the session" ? { sessionId: dispatch!.sessionId! } : {}),
    });
  }

  const received = (user: SimUser) => sim.messagesToUser(user).length;

  it("takes over at once when the claim's process has died, and the user gets one copy", async () => {
    const { first, user, request, key } = await claimedBy(
      localProcessHolders(await deadProcessIdentity()),
    );
    const h = await second(first);
    await runCopy(h, request, "outside the session");

    expect(received(user)).toBe(1);
    expect(await h.ledger.get(h.key(request.id), key)).toMatchObject({ state: "sent" });
    expect(h.queue.waiting).toHaveLength(0);
  });

  it("takes over at once a claim another process made in the session this one now holds", async () => {
    const { first, user, request, key } = await claimedBy(remoteHolders(live));
    // As in Azure: no process can be checked, but the broker gave this one the tenant's session.
    const h = await second(first, remoteHolders());
    await runCopy(h, request, "in the session");

    expect(received(user)).toBe(1);
    expect(await h.ledger.get(h.key(request.id), key)).toMatchObject({ state: "sent" });
  });

  it("waits for a live process's claim made outside its session, sending nothing, and looks again soon", async () => {
    const { first, user, request, key } = await claimedBy(localProcessHolders(live));
    const h = await second(first);
    await runCopy(h, request, "outside the session");

    expect(received(user)).toBe(0);
    const row = await h.ledger.get(h.key(request.id), key);
    const [recheck] = h.queue.waiting;
    expect(recheck?.scheduledFor?.getTime()).toBeLessThan(Date.parse(row!.claimExpiresAt!));
    expect(row).toMatchObject({ state: "sending", claimHolder: live });
  });
});
