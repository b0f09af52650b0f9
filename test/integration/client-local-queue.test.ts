import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { type NotificationRequestInput, RequestValidationError } from "../../shared";
import { NotificationClient } from "../../shared/client/notification-client";
import { requestMessageId } from "../../shared/client/transport";
import type { NotificationRequest } from "../../shared/notifications/schema";
import { LocalQueue } from "../../shared/queue/local-queue";
import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";

function request(overrides: Partial<NotificationRequestInput> = {}): NotificationRequestInput {
  return {
    tenantId: TENANT,
    recipients: [{ userPrincipalName: "alice@contoso.com" }],
    message: { text: "Your expense report was approved" },
    ...overrides,
  };
}

describe("NotificationClient", () => {
  let root: string;
  let queue: LocalQueue;
  let client: NotificationClient;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "herald-client-"));
    queue = new LocalQueue({ directory: root });
    client = new NotificationClient({ localQueueDirectory: root });
  });

  afterEach(async () => {
    await client.close();
    rmSync(root, { recursive: true, force: true });
  });

  describe("send to the local queue", () => {
    it("puts the request on the queue npm start drains, with a message id made from the request's tenant, id and content", async () => {
      const id = await client.send(request({ correlationId: "order-42", summary: "Approved" }));

      const [message, ...rest] = queue.receive(10);
      expect(rest).toHaveLength(0);
      expect((message!.body as { id: string }).id).toBe(id);
      expect(message!.messageId).toBe(requestMessageId(message!.body as NotificationRequest));
      expect(message!.correlationId).toBe("order-42");
      // A LOB request carries no work kind: that marks Herald's own work items.
      expect(message!.applicationProperties[WORK_KIND_PROPERTY]).toBeUndefined();
      expect(message!.body).toEqual({
        schemaVersion: 1,
        id,
        tenantId: TENANT,
        recipients: [{ userPrincipalName: "alice@contoso.com" }],
        message: { text: "Your expense report was approved" },
        summary: "Approved",
        correlationId: "order-42",
      });
    });

    it("sends a request once however often it is sent: the intake queue has duplicate detection", async () => {
      const first = await client.send(request({ id: "expense-43" }));
      const again = await client.send(request({ id: "expense-43" }));

      expect(again).toBe(first);
      expect(queue.receive(10).map((m) => (m.body as { id: string }).id)).toEqual(["expense-43"]);
    });

    it("keeps the caller's id and makes a UUID when there is none", async () => {
      const given = await client.send(request({ id: "expense-2024-0042" }));
      const made = await client.send(request());

      expect(given).toBe("expense-2024-0042");
      expect(made).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const ids = queue
        .receive(10)
        .map((m) => (m.body as { id: string }).id)
        .sort();
      expect(ids).toEqual([given, made].sort());
    });

    it("sends many requests and returns their ids in order", async () => {
      const progress: number[] = [];
      const ids = await client.sendMany(
        Array.from({ length: 25 }, (_, i) => request({ id: `bulk-${i}` })),
        { onProgress: (sent) => progress.push(sent) },
      );

      expect(ids).toEqual(Array.from({ length: 25 }, (_, i) => `bulk-${i}`));
      const received = queue.receive(100);
      expect(received.map((m) => (m.body as { id: string }).id).sort()).toEqual([...ids].sort());
      expect(progress.at(-1)).toBe(25);
    });

    it("describes where it sends without any secret", () => {
      expect(client.description).toBe(`local queue "notifications" in ${join(root, "broker.db")}`);
      const sb = new NotificationClient(
        "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0",
      );
      expect(sb.description).toBe("Service Bus contoso.servicebus.windows.net/notifications");
      expect(sb.description).not.toContain("c2VjcmV0");
    });
  });

  describe("validation", () => {
    it("refuses a request too large for one queue message, naming the limit and the HTTP way", async () => {
      const recipients = Array.from({ length: 6_000 }, (_, i) => ({
        userPrincipalName: `person.number.${i}@contoso.example`,
      }));
      const error = await client.send(request({ recipients })).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(RequestValidationError);
      expect((error as Error).message).toMatch(/at most 262144 bytes.*over HTTP/);
      expect(queue.counts()).toMatchObject({ active: 0, scheduled: 0 });
    });

    it("names the bad field and sends nothing", async () => {
      const error = await client
        .send(request({ tenantId: "contoso", recipients: [{ aadObjectId: "not-a-guid" }] }))
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(RequestValidationError);
      const issues = (error as RequestValidationError).issues;
      expect(issues).toEqual(
        expect.arrayContaining([
          { path: "tenantId", message: "must be a GUID" },
          { path: "recipients.0.aadObjectId", message: "must be a GUID" },
        ]),
      );
      expect((error as Error).message).toContain("tenantId: must be a GUID");
      expect(queue.counts()).toMatchObject({ active: 0, scheduled: 0 });
    });

    it("names the index of each bad request in sendMany and sends none of them", async () => {
      const error = await client
        .sendMany([
          request({ id: "ok-1" }),
          request({
            message: {
              text: "hi",
              adaptiveCard: { type: "AdaptiveCard", version: "1.5", body: [] },
            },
          }),
          request({ id: "ok-2" }),
          request({ notBefore: "tomorrow" }),
        ])
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(RequestValidationError);
      const issues = (error as RequestValidationError).issues;
      expect(issues.map((i) => [i.index, i.path])).toEqual([
        [1, "message"],
        [3, "notBefore"],
      ]);
      expect((error as Error).message).toContain(
        "requests[3]: notBefore: must be an ISO 8601 date-time with a time zone",
      );
      expect(queue.counts()).toMatchObject({ active: 0, scheduled: 0 });
    });

    it("refuses two requests with the same id in one call, which the broker would drop silently", async () => {
      const error = await client
        .sendMany([request({ id: "same" }), request({ id: "same", message: { text: "other" } })])
        .catch((e: unknown) => e);

      expect((error as RequestValidationError).issues).toEqual([
        { index: 1, path: "id", message: "duplicates requests[0].id" },
      ]);
      expect(queue.counts()).toMatchObject({ active: 0 });
    });

    it("refuses a target that is not exactly one place", () => {
      expect(() => new NotificationClient({} as never)).toThrow(/exactly one of/);
      expect(() => new NotificationClient({ endpoint: "" })).toThrow(/non-empty/);
    });
  });
});
