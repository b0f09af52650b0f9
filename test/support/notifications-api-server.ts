import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import {
  type HttpHandler,
  HttpRequest,
  type HttpResponseInit,
  InvocationContext,
} from "@azure/functions";

import { memoryLogger } from "../../shared/logging";
import { createNotificationsApi } from "../../shared/notifications/http-api";
import type { NotificationServices } from "../../shared/notifications/services";
import { createNotificationServices } from "../../shared/notifications/services";
import { MemoryQueue } from "./memory-queue";
import { testConfig } from "./test-config";

export interface NotificationsApiServer {
  /** `http://127.0.0.1:<port>`: what a client's `endpoint` is. */
  readonly endpoint: string;
  /** What the enqueue handler put on the queue. */
  readonly queue: MemoryQueue;
  readonly services: NotificationServices;
  /** Every request the server answered: method, path, status, and whether a key came along. */
  readonly calls: {
    method: string;
    path: string;
    /** The query string, with its `?` (empty when none). */
    query: string;
    status: number;
    key: string | undefined;
  }[];
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The real `functions/notifications-api.ts` handlers (over Azurite and an in-memory queue)
 * behind a plain node HTTP server with the Functions host's routes and its function-key
 * check (`authLevel: "function"`: a missing or wrong `x-functions-key` is a 401).
 */
export async function startNotificationsApiServer(
  options: {
    functionKey?: string;
    /** Herald's services behind the routes (default: over Azurite and an in-memory queue). */
    services?: { notifications: NotificationServices; queue: MemoryQueue };
  } = {},
): Promise<NotificationsApiServer> {
  const queue = options.services?.queue ?? new MemoryQueue();
  const services =
    options.services?.notifications ??
    createNotificationServices(testConfig(), memoryLogger(), { queue, events: new MemoryQueue() });
  const api = createNotificationsApi(() => services);
  const calls: NotificationsApiServer["calls"] = [];

  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const key = req.headers["x-functions-key"] as string | undefined;
      const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        calls.push({
          method: req.method ?? "",
          path: url.pathname,
          query: url.search,
          status,
          key,
        });
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(body === undefined ? "" : JSON.stringify(body));
      };
      if (options.functionKey !== undefined && key !== options.functionKey) {
        return answer(401, undefined);
      }
      let handler: HttpHandler | undefined;
      let params: Record<string, string> = {};
      const statusRoute = /^\/api\/notifications\/([^/]+)$/.exec(url.pathname);
      const eventsRoute = /^\/api\/notifications\/([^/]+)\/events$/.exec(url.pathname);
      const recipientRoute = /^\/api\/notifications\/([^/]+)\/recipients\/([^/]+)$/.exec(
        url.pathname,
      );
      if (req.method === "POST" && url.pathname === "/api/notifications") handler = api.enqueue;
      else if (statusRoute !== null) {
        const byMethod: Record<string, HttpHandler> = {
          GET: api.status,
          PATCH: api.update,
          DELETE: api.recall,
        };
        handler = byMethod[req.method ?? ""];
        params = { id: decodeURIComponent(statusRoute[1]!) };
      } else if (req.method === "GET" && eventsRoute !== null) {
        handler = api.events;
        params = { id: decodeURIComponent(eventsRoute[1]!) };
      } else if (req.method === "PATCH" && recipientRoute !== null) {
        handler = api.updateRecipient;
        params = {
          id: decodeURIComponent(recipientRoute[1]!),
          recipient: decodeURIComponent(recipientRoute[2]!),
        };
      }
      if (handler === undefined) return answer(404, undefined);
      const body = await readBody(req);
      const request = new HttpRequest({
        method: req.method ?? "GET",
        url: url.toString(),
        headers: Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [
            k,
            Array.isArray(v) ? v.join(",") : (v ?? ""),
          ]),
        ),
        params,
        ...(body !== "" ? { body: { string: body } } : {}),
      });
      const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: "notifications-api",
        logHandler: () => undefined,
      });
      const response: HttpResponseInit = await handler(request, context);
      answer(
        response.status ?? 200,
        response.jsonBody,
        Object.fromEntries(
          Object.entries((response.headers ?? {}) as Record<string, string>).filter(
            ([k]) => k.toLowerCase() !== "content-type",
          ),
        ),
      );
    })().catch((error: unknown) => {
      res.writeHead(500);
      res.end(String(error));
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    queue,
    services,
    calls,
    close: () =>
      new Promise<void>((done, fail) => {
        server.closeAllConnections();
        server.close((error) => (error ? fail(error) : done()));
      }),
  };
}
