import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

import {
  ChangeRefusedError,
  HttpResponseError,
  NotificationClient,
  NotificationNotFoundError,
  RequestValidationError,
} from "../../shared";
import { MemoryQueue } from "../support/memory-queue";
import {
  type NotificationsApiServer,
  startNotificationsApiServer,
} from "../support/notifications-api-server";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const KEY = "test-function-key";

describe("NotificationClient's update and recall", () => {
  let api: NotificationsApiServer;
  let client: NotificationClient;

  beforeAll(async () => {
    api = await startNotificationsApiServer({ functionKey: KEY });
    client = new NotificationClient({ endpoint: api.endpoint, functionKey: KEY });
  });
  afterAll(() => api.close());

  async function sent(): Promise<string> {
    return client.send({
      tenantId: TENANT,
      recipients: [{ teamsUserId: "29:1abc" }],
      message: { text: "Maintenance at 10:00" },
    });
  }

  it("updates over HTTP with PATCH and answers the new revision", async () => {
    const id = await sent();

    const answer = await client.update({
      id,
      tenantId: TENANT,
      message: { text: "Maintenance at 11:00" },
    });

    expect(answer).toEqual({ kind: "accepted", revision: 2, recalled: false });
    expect(api.calls.at(-1)).toMatchObject({ method: "PATCH", status: 202, key: KEY });
    expect((await client.status(id, { tenantId: TENANT }))?.revision).toBe(2);
  });

  it("recalls over HTTP with DELETE; an update after it is refused with the reason", async () => {
    const id = await sent();

    expect(await client.recall({ id, tenantId: TENANT })).toMatchObject({
      kind: "accepted",
      recalled: true,
    });
    expect(api.calls.at(-1)).toMatchObject({ method: "DELETE", status: 202 });
    await expect(
      client.update({ id, tenantId: TENANT, summary: "too late" }),
    ).rejects.toBeInstanceOf(ChangeRefusedError);
  });

  /** An app at the URL that answers every call 202 with `body`. */
  async function answering<T>(body: unknown, use: (client: NotificationClient) => Promise<T>) {
    const other = createServer((_req, res) => {
      res.writeHead(202, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    try {
      const endpoint = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
      return await use(new NotificationClient({ endpoint, functionKey: KEY }));
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  }

  it("refuses a success that is not Herald's answer (another app at the URL) instead of taking it as revision 1", async () => {
    const id = "req-at-the-wrong-app";
    await answering({ ok: true, revision: "2" }, async (wrong) => {
      const calls = [
        () => wrong.update({ id, tenantId: TENANT, summary: "moved" }),
        () => wrong.recall({ id, tenantId: TENANT }),
        () => wrong.updateRecipient(id, TENANT, "29:1abc", { summary: "for you" }),
        () => wrong.status(id, { tenantId: TENANT }),
      ];
      for (const call of calls) {
        const error = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HttpResponseError);
        expect((error as HttpResponseError).message).toMatch(/not as Herald answers \(\w+: /);
      }
    });
  });

  it("takes a recipient's update answered for a roster member whose Teams id is not a 29: id", async () => {
    // What Herald answers when the row is a team member an emulator named `user-id-0`.
    const body = {
      id: "req-1",
      recipient: { teamsUserId: "user-id-0" },
      revision: 2,
      override: 1,
      statusUrl: "http://127.0.0.1/api/notifications/req-1",
    };
    const answer = await answering(body, (app) =>
      app.updateRecipient("req-1", TENANT, "29:1abc", { summary: "for you" }),
    );
    expect(answer).toEqual({
      kind: "accepted",
      recipient: { teamsUserId: "user-id-0" },
      revision: 2,
      override: 1,
    });
  });

  it("throws NotificationNotFoundError for an id Herald does not have", async () => {
    await expect(client.recall({ id: "no-such-id", tenantId: TENANT })).rejects.toBeInstanceOf(
      NotificationNotFoundError,
    );
  });

  it("validates an update before sending anything, naming the field", async () => {
    const before = api.calls.length;

    const error = await client.update({ id: "x", tenantId: "not-a-guid" }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RequestValidationError);
    expect((error as RequestValidationError).issues.map((i) => i.path)).toContain("tenantId");
    expect(api.calls.length).toBe(before);
  });

  it("puts a change on the queue as the intake queue's operation, each call its own message", async () => {
    const queue = new MemoryQueue();
    const queued = new NotificationClient({ queue });

    await queued.update({ id: "r1", tenantId: TENANT, summary: "new preview" });
    await queued.recall({ id: "r1", tenantId: TENANT });

    expect(queue.sent.map((m) => m.body)).toEqual([
      { schemaVersion: 1, operation: "update", id: "r1", tenantId: TENANT, summary: "new preview" },
      { schemaVersion: 1, operation: "recall", id: "r1", tenantId: TENANT },
    ]);
    expect(new Set(queue.sent.map((m) => m.messageId)).size).toBe(2);
  });
});
