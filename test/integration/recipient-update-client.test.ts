import {
  ChangeRefusedError,
  NotificationClient,
  RecipientNotFoundError,
  RequestValidationError,
} from "../../shared";
import { run } from "../../shared/cli/cli";
import type { SimUser } from "../simulator";
import {
  type NotificationsApiServer,
  startNotificationsApiServer,
} from "../support/notifications-api-server";
import { NotificationChanges, seedUsers } from "./notification-changes";
import { NotificationsHarness } from "./notifications-harness";

describe("NotificationClient.updateRecipient and herald update --recipient", () => {
  let h: NotificationsHarness;
  let api: NotificationsApiServer;
  let client: NotificationClient;
  let changes: NotificationChanges;

  beforeAll(async () => {
    h = await NotificationsHarness.start({}, { pacing: false });
    api = await startNotificationsApiServer({
      services: { notifications: h.services, queue: h.queue },
    });
    client = new NotificationClient({ endpoint: api.endpoint }, { httpMaxTries: 1 });
    changes = new NotificationChanges(h);
  });
  afterAll(async () => {
    await client.close();
    await api.close();
    await h.close();
  });
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
  });

  /** A request sent to every one of `users`: its id. */
  async function sentTo(users: readonly SimUser[]): Promise<string> {
    const request = h.request({
      recipients: users.map((u) => ({ teamsUserId: u.id })),
      message: { text: "Order 4711 is waiting" },
    });
    await h.deliver({ body: request, messageId: request.id });
    await h.drain();
    return request.id;
  }

  /** The CLI in-process against the API server. */
  async function herald(args: string[]) {
    let stdout = "";
    let stderr = "";
    const code = await run(args, {
      stdout: { write: (chunk: string) => (stdout += chunk) },
      stderr: { write: (chunk: string) => (stderr += chunk), isTTY: false, columns: 100 },
      env: {},
      clientOptions: { httpMaxTries: 1 },
    });
    return { code, stdout, stderr };
  }

  describe("the client", () => {
    it("replaces one person's copy over HTTP and answers the override's sequence", async () => {
      const users = await seedUsers(h, 2);
      const id = await sentTo(users);

      const answer = await client.updateRecipient(id, h.sim.tenantId, users[0]!.userPrincipalName, {
        message: { text: "Approved, order 4711 created" },
      });
      await h.drain();

      expect(answer).toEqual({
        kind: "accepted",
        recipient: { teamsUserId: users[0]!.id },
        revision: 1,
        override: 1,
      });
      expect(api.calls.at(-1)).toMatchObject({
        method: "PATCH",
        path: `/api/notifications/${id}/recipients/${encodeURIComponent(users[0]!.userPrincipalName)}`,
        status: 202,
      });
      expect(changes.visible(users[0]!)).toEqual(["Approved, order 4711 created"]);
      expect(changes.visible(users[1]!)).toEqual(["Order 4711 is waiting"]);
    });

    it("throws RecipientNotFoundError for a person the request does not reach", async () => {
      const id = await sentTo(await seedUsers(h, 1));

      await expect(
        client.updateRecipient(id, h.sim.tenantId, "29:someone-else", { summary: "x" }),
      ).rejects.toBeInstanceOf(RecipientNotFoundError);
    });

    it("throws ChangeRefusedError with the reason on a recalled request", async () => {
      const [user] = await seedUsers(h, 1);
      const id = await sentTo([user!]);
      await client.recall({ id, tenantId: h.sim.tenantId });

      const error = await client
        .updateRecipient(id, h.sim.tenantId, user!.id, { summary: "late" })
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(ChangeRefusedError);
      expect((error as Error).message).toContain("recalled");
    });

    it("validates before sending anything, naming each bad field", async () => {
      const before = api.calls.length;

      const error = await client
        .updateRecipient("some-id", "not-a-guid", "nobody", {})
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(RequestValidationError);
      expect((error as RequestValidationError).issues.map((i) => i.path)).toEqual([
        "recipient",
        "tenantId",
        "(body)",
      ]);
      expect(api.calls.length).toBe(before);
    });
  });

  describe("the CLI", () => {
    it("updates one person's copy and prints the revision and the override's sequence", async () => {
      const users = await seedUsers(h, 2);
      const id = await sentTo(users);
      const args = ["update", id, "--tenant", h.sim.tenantId, "--recipient", users[1]!.id];

      const result = await herald([...args, "--text", "Rejected", "--endpoint", api.endpoint]);
      await h.drain();

      expect(result).toMatchObject({
        code: 0,
        stdout: `Updated ${id} for ${users[1]!.id} (revision 1, per-recipient update 1)\n`,
      });
      expect(changes.visible(users[1]!)).toEqual(["Rejected"]);
      expect(changes.visible(users[0]!)).toEqual(["Order 4711 is waiting"]);
    });

    it("exits 7 for a recipient the request does not reach", async () => {
      const id = await sentTo(await seedUsers(h, 1));

      const result = await herald([
        ...["update", id, "--tenant", h.sim.tenantId, "--recipient", "nobody@contoso.com"],
        ...["--summary", "x", "--endpoint", api.endpoint],
      ]);

      expect(result.code).toBe(7);
      expect(result.stderr).toContain("no copy for nobody@contoso.com");
    });

    it("exits 2 for --recipient with --not-before, or without the HTTP endpoint", async () => {
      const tenant = ["--tenant", h.sim.tenantId, "--recipient", "29:a"];
      const results = await Promise.all([
        herald(["update", "x", ...tenant, "--not-before", "2030-01-01T00:00:00Z"]),
        herald(["update", "x", ...tenant, "--text", "hi", "--queue-dir", "/nonexistent"]),
      ]);

      expect(results.map((r) => r.code)).toEqual([2, 2]);
      expect(results[0].stderr).toContain("--not-before applies to the whole request");
      expect(results[1].stderr).toContain("--recipient needs Herald's HTTP endpoint");
    });
  });
});
