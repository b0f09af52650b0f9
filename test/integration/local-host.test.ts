import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { HttpResponse, type HttpResponseInit, type InvocationContext } from "@azure/functions";

import { startLocalHost } from "../../shared/local-host/local-host";
import { LocalQueue } from "../../shared/queue/local-queue";
import type { Registration } from "../../shared/registry";

/** Polls until `check` returns a value (a guard against hanging, not a timing assertion). */
async function eventually<T>(check: () => T | undefined, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const seenContexts: InvocationContext[] = [];

/** A test-only function app: what functions/*.ts would register through shared/registry.ts. */
const registrations: Registration[] = [
  {
    kind: "http",
    name: "echo",
    options: {
      methods: ["GET", "POST", "PUT"],
      authLevel: "function",
      route: "things/{id}/echo",
      handler: async (request, context) => {
        seenContexts.push(context);
        return {
          status: 200,
          jsonBody: {
            method: request.method,
            url: request.url,
            params: request.params,
            tags: request.query.getAll("tag"),
            header: request.headers.get("x-test"),
            body: await request.text(),
            functionName: context.functionName,
          },
        };
      },
    },
  },
  {
    kind: "http",
    name: "item-by-number",
    options: {
      methods: ["GET"],
      route: "items/{id:int}",
      handler: (request) => ({ body: `number ${request.params.id}` }),
    },
  },
  {
    kind: "http",
    name: "item-special",
    options: {
      methods: ["GET"],
      route: "items/special",
      handler: () => ({ body: "the special one" }),
    },
  },
  {
    kind: "http",
    name: "item-by-name",
    options: {
      methods: ["GET"],
      route: "items/{name}",
      handler: (request) => ({ body: `named ${request.params.name}` }),
    },
  },
  {
    // No route: the function name is the route, GET and POST as the library defaults.
    kind: "http",
    name: "ping",
    options: { handler: () => ({ body: "pong" }) },
  },
  {
    kind: "http",
    name: "created",
    options: {
      methods: ["POST"],
      route: "created",
      handler: () =>
        new HttpResponse({
          status: 201,
          headers: { location: "/api/things/7", "x-custom": "yes" },
          cookies: [{ name: "session", value: "abc", httpOnly: true, path: "/" }],
          body: "made",
        }),
    },
  },
  {
    kind: "http",
    name: "binary",
    options: {
      methods: ["GET"],
      route: "binary",
      handler: () => ({
        headers: { "content-type": "application/octet-stream" },
        body: new Uint8Array([0, 1, 2, 255]),
      }),
    },
  },
  {
    kind: "http",
    name: "probe",
    options: {
      methods: ["POST", "HEAD"],
      route: "probe",
      handler: (request) => ({ headers: { "x-method": request.method }, body: "full body" }),
    },
  },
  {
    kind: "http",
    name: "fails",
    options: {
      methods: ["GET"],
      route: "fails",
      handler: () => {
        throw new Error("boom");
      },
    },
  },
  {
    kind: "http",
    name: "nothing",
    options: {
      methods: ["GET"],
      route: "nothing",
      // A JavaScript handler may return nothing; the types do not allow it, the host does.
      handler: () => undefined as unknown as HttpResponseInit,
    },
  },
];

describe("local host", () => {
  describe("HTTP functions", () => {
    let origin: string;
    let close: () => Promise<void>;
    const logged: string[] = [];

    beforeAll(async () => {
      const host = await startLocalHost({
        registrations,
        settings: {},
        port: 0,
        queueDirectory: undefined,
        logHandlerFor:
          (name) =>
          (level, ...args) =>
            logged.push(`${name} ${level} ${args.join(" ")}`),
      });
      origin = host.http.origin;
      close = () => host.close();
    });

    afterAll(() => close());

    it("calls the handler with the method, route params, query, headers and body", async () => {
      const response = await fetch(`${origin}/api/things/42%20a/echo?tag=x&tag=y`, {
        method: "POST",
        headers: { "x-test": "hello", "content-type": "text/plain" },
        body: "payload ✓",
      });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("application/json");
      await expect(response.json()).resolves.toEqual({
        method: "POST",
        url: `${origin}/api/things/42%20a/echo?tag=x&tag=y`,
        params: { id: "42 a" },
        tags: ["x", "y"],
        header: "hello",
        body: "payload ✓",
        functionName: "echo",
      });
      const context = seenContexts.at(-1)!;
      expect(context.invocationId).toMatch(/^[0-9a-f-]{36}$/);
      expect(context.options.trigger.type).toBe("httpTrigger");
    });

    it("matches literal segments case-insensitively and prefers them over parameters", async () => {
      const texts = await Promise.all(
        ["items/special", "ITEMS/Special", "items/17", "items/seventeen"].map(async (path) =>
          (await fetch(`${origin}/api/${path}`)).text(),
        ),
      );
      expect(texts).toEqual(["the special one", "the special one", "number 17", "named seventeen"]);
    });

    it("routes a function without a route by its name, for GET and POST only", async () => {
      expect(await (await fetch(`${origin}/api/ping`)).text()).toBe("pong");
      expect(await (await fetch(`${origin}/api/ping`, { method: "POST" })).text()).toBe("pong");
      const put = await fetch(`${origin}/api/ping`, { method: "PUT" });
      expect(put.status).toBe(405);
      expect(put.headers.get("allow")).toBe("GET, POST");
    });

    it("writes back the status, headers, cookies and body of an HttpResponse", async () => {
      const response = await fetch(`${origin}/api/created`, { method: "POST" });
      expect(response.status).toBe(201);
      expect(response.headers.get("location")).toBe("/api/things/7");
      expect(response.headers.get("x-custom")).toBe("yes");
      expect(response.headers.getSetCookie()).toEqual(["session=abc; Path=/; HttpOnly"]);
      expect(await response.text()).toBe("made");
    });

    it("returns a byte body unchanged", async () => {
      const response = await fetch(`${origin}/api/binary`);
      expect(response.headers.get("content-type")).toBe("application/octet-stream");
      expect([...new Uint8Array(await response.arrayBuffer())]).toEqual([0, 1, 2, 255]);
    });

    it("answers HEAD on a route registered with HEAD, with headers and no body", async () => {
      const response = await fetch(`${origin}/api/probe`, { method: "HEAD" });
      expect(response.status).toBe(200);
      expect(response.headers.get("x-method")).toBe("HEAD");
      expect(response.headers.get("content-length")).toBe(String("full body".length));
      expect(await response.text()).toBe("");
      const head = await fetch(`${origin}/api/items/special`, { method: "HEAD" });
      expect(head.status).toBe(405);
    });

    it("answers 500 with no body when the handler throws, and logs the error", async () => {
      const response = await fetch(`${origin}/api/fails`);
      expect(response.status).toBe(500);
      expect(await response.text()).toBe("");
      expect(logged.some((l) => l.startsWith("fails error") && l.includes("boom"))).toBe(true);
    });

    it("answers 204 when the handler returns nothing", async () => {
      const response = await fetch(`${origin}/api/nothing`);
      expect(response.status).toBe(204);
    });

    it("answers 404 for unknown routes and paths outside the route prefix", async () => {
      const statuses = await Promise.all(
        ["/api/unknown", "/api/items/special/extra", "/things/1/echo", "/"].map(
          async (path) => (await fetch(`${origin}${path}`)).status,
        ),
      );
      expect(statuses).toEqual([404, 404, 404, 404]);
    });
  });

  describe("Service Bus queue functions", () => {
    let root: string;
    beforeEach(() => {
      root = mkdtempSync(join(tmpdir(), "herald-local-host-"));
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));

    it("drains the local queue named by the %setting% into the registered handler", async () => {
      const received: { body: unknown; metadata: unknown }[] = [];
      const host = await startLocalHost({
        registrations: [
          {
            kind: "serviceBusQueue",
            name: "work",
            options: {
              queueName: "%WorkQueueName%",
              connection: "ServiceBusConnection",
              handler: (body, context) => {
                received.push({ body, metadata: context.triggerMetadata });
              },
            },
          },
        ],
        settings: { WorkQueueName: "work-items" },
        port: 0,
        queueDirectory: root,
        logHandlerFor: () => () => undefined,
      });
      try {
        expect(host.queues.map((q) => q.queue.queueName)).toEqual(["work-items"]);
        // Another process (the CLI) enqueues into the same folder.
        await new LocalQueue({ directory: root, queueName: "work-items" }).enqueue([
          { body: { job: 1 }, messageId: "m-1", applicationProperties: { heraldKind: "delivery" } },
        ]);
        await eventually(() => received[0]);
      } finally {
        await host.close();
      }
      expect(received).toEqual([
        {
          body: { job: 1 },
          metadata: expect.objectContaining({
            messageId: "m-1",
            deliveryCount: 1,
            applicationProperties: { heraldKind: "delivery" },
          }) as unknown,
        },
      ]);
    });

    it("refuses to start when a %setting% in a binding is not set, naming it", async () => {
      await expect(
        startLocalHost({
          registrations: [
            {
              kind: "serviceBusQueue",
              name: "work",
              options: { queueName: "%MissingQueue%", connection: "x", handler: () => undefined },
            },
          ],
          settings: {},
          port: 0,
          queueDirectory: root,
        }),
      ).rejects.toThrow(/MissingQueue/);
    });
  });
});
