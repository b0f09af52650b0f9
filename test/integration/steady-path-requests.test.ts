import { TableRequestCounter } from "../../bench/table-request-counter";
import { NotificationsHarness } from "./notifications-harness";

/**
 * The steady path's cost in round trips to Table Storage, counted by a proxy in front of
 * Azurite (the benchmark's counter): a request to a known user whose 1:1 chat is stored.
 */
describe("the steady path's Table requests", () => {
  let counter: TableRequestCounter;
  let h: NotificationsHarness;

  beforeAll(async () => {
    const connectionString = process.env.HERALD_TEST_TABLES_CONNECTION;
    if (connectionString === undefined) throw new Error("Azurite is not running");
    counter = await TableRequestCounter.start({ connectionString, prefix: "" });
    h = await NotificationsHarness.start({
      TableStorageConnection: counter.target.connectionString,
    });
  });
  afterAll(async () => {
    await h.close();
    await counter.close();
  });

  it("delivers to a user named by AAD id in five Table requests and one Teams call", async () => {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    const request = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    const before = counter.count;
    const teamsBefore = h.sim.requests.length;

    await h.deliver({ body: request, messageId: request.id });

    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    // The request row with its body, the user's index row and reference, the claim with the
    // per-user guard, the outcome.
    expect(counter.count - before).toBe(5);
    expect(h.sim.requests.length - teamsBefore).toBe(1);
  });
});
