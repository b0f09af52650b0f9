import {
  HttpResponseError,
  NotificationClient,
  NotificationSendError,
  RequestConflictError,
  RequestValidationError,
} from "../../shared";
import { HttpTransport } from "../../shared/client/http-transport";
import type { NotificationRequest } from "../../shared/notifications/schema";
import { dispatches } from "../support/memory-queue";
import {
  type NotificationsApiServer,
  startNotificationsApiServer,
} from "../support/notifications-api-server";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const KEY = "test-function-key";

function request(id?: string) {
  return {
    ...(id !== undefined ? { id } : {}),
    tenantId: TENANT,
    recipients: [{ userPrincipalName: "alice@contoso.com" }, { teamsUserId: "29:1abc" }],
    message: { text: "Build **4711** is green" },
  };
}

describe("NotificationClient over HTTP", () => {
  let api: NotificationsApiServer;
  let client: NotificationClient;

  beforeAll(async () => {
    api = await startNotificationsApiServer({ functionKey: KEY });
  });
  afterAll(() => api.close());

  beforeEach(() => {
    client = new NotificationClient({ endpoint: api.endpoint, functionKey: KEY });
  });

  it("posts the request with the function key; the endpoint puts it on the queue under its id", async () => {
    const id = await client.send(request());

    expect(api.calls.at(-1)).toMatchObject({
      method: "POST",
      path: "/api/notifications",
      status: 202,
      key: KEY,
    });
    const queued = dispatches(api.queue.sent).find(
      (m) => m.applicationProperties?.requestId === id,
    );
    expect(queued?.body).toMatchObject({ requestId: id, tenantId: TENANT });
  });

  it("sends many, each once, and returns their ids", async () => {
    const ids = await client.sendMany([request("http-a"), request("http-b"), request("http-c")]);

    expect(ids).toEqual(["http-a", "http-b", "http-c"]);
    const queuedIds = dispatches(api.queue.sent).map((m) => m.applicationProperties?.requestId);
    for (const id of ids) expect(queuedIds.filter((q) => q === id)).toHaveLength(1);
  });

  it("accepts a replay of a request it sent (202) without queueing it twice", async () => {
    await client.send(request("http-again"));
    const again = await client.send(request("http-again"));

    expect(again).toBe("http-again");
    expect(api.calls.filter((c) => c.status === 409)).toHaveLength(0);
    expect(
      dispatches(api.queue.sent).filter((m) => m.applicationProperties?.requestId === "http-again"),
    ).toHaveLength(1);
  });

  it("throws RequestConflictError for an id the tenant already uses with different content, and queues nothing of it", async () => {
    await client.send(request("http-taken"));
    const queuedBefore = dispatches(api.queue.sent).length;

    const error = await client
      .send({ ...request("http-taken"), message: { text: "Something else" } })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RequestConflictError);
    expect((error as RequestConflictError).conflictIds).toEqual(["http-taken"]);
    expect((error as Error).message).toBe(
      "Request id http-taken is already used in this tenant by a request with different content: nothing of it was queued. Send it again with a new id.",
    );
    expect(dispatches(api.queue.sent).length).toBe(queuedBefore);
  });

  it("sends the rest of a sendMany when some ids conflict, and names both", async () => {
    await client.send(request("http-many-taken"));

    const error = await client
      .sendMany([
        request("http-many-new"),
        { ...request("http-many-taken"), message: { text: "Something else" } },
      ])
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RequestConflictError);
    expect((error as RequestConflictError).conflictIds).toEqual(["http-many-taken"]);
    expect((error as RequestConflictError).sentIds).toEqual(["http-many-new"]);
    expect((error as Error).message).toContain("The other request was accepted.");
    expect(dispatches(api.queue.sent).map((m) => m.applicationProperties?.requestId)).toContain(
      "http-many-new",
    );
  });

  it("retries a POST whose answer was lost, and the endpoint takes the retry as a replay", async () => {
    let posts = 0;
    const losing: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      // The first POST reaches the endpoint, but its answer never comes back.
      if (init?.method === "POST" && posts++ === 0) throw new TypeError("fetch failed");
      return response;
    };
    const transport = new HttpTransport({
      endpoint: api.endpoint,
      functionKey: KEY,
      fetch: losing,
      sleep: () => Promise.resolve(),
    });
    const accepted: string[] = [];
    const refused: string[] = [];
    const lost = { ...request("http-lost"), id: "http-lost", schemaVersion: 1 };

    await transport.send([lost as NotificationRequest], {
      onSent: (ids) => accepted.push(...ids),
      onConflict: (id) => refused.push(id),
    });

    expect({ accepted, refused, posts }).toEqual({
      accepted: ["http-lost"],
      refused: [],
      posts: 2,
    });
    expect(
      dispatches(api.queue.sent).filter((m) => m.applicationProperties?.requestId === "http-lost"),
    ).toHaveLength(1);
  });

  it("reads the status of a request it sent", async () => {
    const id = await client.send(request("http-status"));

    const status = await client.status(id, { tenantId: TENANT });

    expect(status).toMatchObject({
      id,
      state: "queued",
      final: false,
      tenantId: TENANT,
      counts: { total: 0 },
    });
    expect(api.calls.at(-1)).toMatchObject({
      path: `/api/notifications/${id}`,
      query: `?tenantId=${TENANT}`,
    });
  });

  it("waitForFinal gives up at the deadline with the last status it read", async () => {
    const id = await client.send(request("http-wait"));
    let clock = 0;
    const seen: (string | undefined)[] = [];

    const result = await client.waitForFinal(id, {
      tenantId: TENANT,
      timeoutMs: 3_000,
      pollMs: 1_000,
      now: () => clock,
      sleep: (ms) => {
        clock += ms;
        return Promise.resolve();
      },
      onProgress: (status) => seen.push(status?.state),
    });

    expect(result).toMatchObject({ kind: "timeout", status: { id, state: "queued" } });
    expect(seen).toEqual(["queued", "queued", "queued", "queued"]);
  });

  it("answers undefined for an id the endpoint does not know", async () => {
    expect(await client.status("never-sent")).toBeUndefined();
  });

  it("fails with the status code and a hint when the function key is wrong, and says nothing was sent", async () => {
    const wrong = new NotificationClient({ endpoint: api.endpoint, functionKey: "wrong" });
    const before = dispatches(api.queue.sent).length;

    const error = await wrong.send(request()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(NotificationSendError);
    expect((error as Error).message).toMatch(/answered 401 .*function key/);
    expect((error as NotificationSendError).sentIds).toEqual([]);
    expect(((error as Error).cause as HttpResponseError).statusCode).toBe(401);
    expect(dispatches(api.queue.sent).length).toBe(before);
    await expect(wrong.status("x")).rejects.toThrow(/401/);
  });

  it("names the fields of a request the endpoint refuses (400)", async () => {
    // The client validates first; talk to the transport directly to see the endpoint's answer.
    const transport = new HttpTransport({ endpoint: api.endpoint, functionKey: KEY });
    const bad = {
      ...request("http-bad"),
      schemaVersion: 1,
      tenantId: "contoso",
    } as NotificationRequest;

    const error = await transport
      .send([bad], { onSent: () => undefined, onConflict: () => undefined })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RequestValidationError);
    expect((error as RequestValidationError).issues).toEqual([
      { path: "tenantId", message: "must be a GUID" },
    ]);
  });

  it("reports an endpoint that cannot be reached", async () => {
    const closed = await startNotificationsApiServer();
    await closed.close();
    const offline = new NotificationClient(closed.endpoint, undefined, { httpMaxTries: 1 });

    const error = await offline.send(request()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(NotificationSendError);
    expect((error as Error).message).toMatch(
      /Could not reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
    );
  });
});
