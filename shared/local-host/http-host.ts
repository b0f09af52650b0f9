import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import {
  type Cookie,
  type HttpHandler,
  HttpRequest,
  HttpResponse,
  InvocationContext,
  type LogHandler,
} from "@azure/functions";

import { toError } from "../errors";
import type { Registration } from "../registry";
import { compareRoutes, type CompiledRoute, compileRoute, splitPath } from "./routes";

/** The Functions host's default request size limit (100 MB). */
const MAX_BODY_BYTES = 100 * 1024 * 1024;

export interface HttpRoute {
  readonly functionName: string;
  readonly methods: ReadonlySet<string>;
  readonly route: CompiledRoute;
  readonly authLevel: string;
  readonly handler: HttpHandler;
}

export interface HttpHostOptions {
  readonly registrations: readonly Registration[];
  readonly host?: string;
  /** 0 takes a free port. */
  readonly port?: number;
  /** host.json `extensions.http.routePrefix`; "api" by default. */
  readonly routePrefix?: string;
  /** Where each invocation's `context.log` goes, and the access log (function name "http"). */
  readonly logHandlerFor?: (functionName: string) => LogHandler;
}

export interface RunningHttpHost {
  /** e.g. `http://127.0.0.1:7071` */
  readonly origin: string;
  readonly port: number;
  readonly routes: readonly HttpRoute[];
  /** The full URL of a route, e.g. `http://127.0.0.1:7071/api/messages`. */
  urlOf(route: HttpRoute): string;
  close(): Promise<void>;
}

/** The HTTP routes of the registered functions, most specific first, as the host orders them. */
export function httpRoutes(registrations: readonly Registration[]): HttpRoute[] {
  const routes: HttpRoute[] = [];
  for (const r of registrations) {
    if (r.kind !== "http") continue;
    routes.push({
      functionName: r.name,
      // The library's default when `methods` is not given.
      methods: new Set((r.options.methods ?? ["GET", "POST"]).map((m) => m.toUpperCase())),
      route: compileRoute(r.options.route ?? r.name),
      authLevel: r.options.authLevel ?? "anonymous",
      handler: r.options.handler,
    });
  }
  return routes.sort((a, b) => compareRoutes(a.route, b.route));
}

/**
 * Serves the registered HTTP functions the way the Functions host does: Node request →
 * `HttpRequest` + `InvocationContext` → the very same handler → `HttpResponse` → Node response.
 * Function keys (`authLevel: "function"`) are not checked, as Core Tools does not check them.
 */
export async function startHttpHost(options: HttpHostOptions): Promise<RunningHttpHost> {
  const routes = httpRoutes(options.registrations);
  const prefix = splitPath(options.routePrefix ?? "api");
  const logFor = options.logHandlerFor ?? consoleLogHandler;
  const access = logFor("http");

  const server: Server = createServer((req, res) => {
    const started = process.hrtime.bigint();
    serve(req, res, routes, prefix, logFor)
      .catch((error: unknown) => {
        access("error", `${req.method} ${req.url}: ${toError(error).stack ?? String(error)}`);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      })
      .finally(() => {
        const ms = Number((process.hrtime.bigint() - started) / 1_000_000n);
        access("information", `${req.method} ${req.url} -> ${res.statusCode} (${ms} ms)`);
      });
  });

  await new Promise<void>((resolveListen, rejectListen) => {
    server.once("error", rejectListen);
    server.listen(options.port ?? 7071, options.host ?? "127.0.0.1", () => {
      server.off("error", rejectListen);
      resolveListen();
    });
  });
  const address = server.address() as AddressInfo;
  const origin = `http://${address.address.includes(":") ? `[${address.address}]` : address.address}:${address.port}`;
  const base = prefix.length > 0 ? `/${prefix.join("/")}` : "";

  return {
    origin,
    port: address.port,
    routes,
    urlOf: (route) => `${origin}${base}/${route.route.template.replace(/^\/+/, "")}`,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  routes: readonly HttpRoute[],
  prefix: readonly string[],
  logFor: (functionName: string) => LogHandler,
): Promise<void> {
  const method = (req.method ?? "GET").toUpperCase();
  const hostHeader = req.headers.host ?? `${req.socket.localAddress}:${req.socket.localPort}`;
  const url = new URL(req.url ?? "/", `http://${hostHeader}`);
  const segments = splitPath(url.pathname);
  const underPrefix = prefix.every((p, i) => segments[i]?.toLowerCase() === p.toLowerCase());
  const path = segments.slice(prefix.length);

  const matches: { route: HttpRoute; params: Record<string, string> }[] = [];
  if (underPrefix) {
    for (const route of routes) {
      const params = route.route.match(path);
      if (params) matches.push({ route, params });
    }
  }
  if (matches.length === 0) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    res.end(`No function serves ${url.pathname}\n`);
    return;
  }
  const match = matches.find((m) => m.route.methods.has(method));
  if (!match) {
    const allowed = [...new Set(matches.flatMap((m) => [...m.route.methods]))].join(", ");
    res.writeHead(405, { allow: allowed, "content-type": "text/plain; charset=utf-8" });
    res.end(`${method} is not allowed on ${url.pathname}; allowed: ${allowed}\n`);
    return;
  }

  const body = await readBody(req);
  if (body === "too-large") {
    res.writeHead(413);
    res.end();
    return;
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  const request = new HttpRequest({
    method,
    url: url.toString(),
    headers,
    params: match.params,
    ...(body.length > 0 ? { body: { bytes: body } } : {}),
  });
  const { functionName } = match.route;
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName,
    logHandler: logFor(functionName),
    options: {
      trigger: {
        type: "httpTrigger",
        name: "httpTrigger",
        methods: [...match.route.methods],
        authLevel: match.route.authLevel,
        route: match.route.route.template,
      },
      return: { type: "http", name: "$return" },
    },
  });

  let result: unknown;
  try {
    result = await Promise.resolve(match.route.handler(request, context));
  } catch (error) {
    // The host answers an unhandled exception with a bare 500.
    context.error(`Executed '${functionName}' (Failed): ${toError(error).stack ?? String(error)}`);
    res.writeHead(500);
    res.end();
    return;
  }
  await writeResponse(res, result, method === "HEAD");
}

async function readBody(req: IncomingMessage): Promise<Buffer | "too-large"> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) return "too-large";
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

async function writeResponse(res: ServerResponse, result: unknown, head: boolean): Promise<void> {
  if (result === undefined || result === null) {
    res.writeHead(204);
    res.end();
    return;
  }
  if (typeof result !== "object") {
    throw new Error(
      'The HTTP response must be an object with optional properties "body", "status", "headers", and "cookies".',
    );
  }
  const response = result instanceof HttpResponse ? result : new HttpResponse(result);
  const bytes = Buffer.from(await response.arrayBuffer());
  const outgoing: Record<string, string | string[]> = {};
  for (const [name, value] of response.headers.entries()) {
    if (name === "set-cookie") continue;
    outgoing[name] = value;
  }
  const cookies = [...response.headers.getSetCookie(), ...response.cookies.map(serializeCookie)];
  if (cookies.length > 0) outgoing["set-cookie"] = cookies;
  delete outgoing["transfer-encoding"];
  outgoing["content-length"] = String(bytes.length);
  res.writeHead(response.status, outgoing);
  res.end(head ? undefined : bytes);
}

function serializeCookie(cookie: Cookie): string {
  const parts = [`${cookie.name}=${cookie.value}`];
  if (cookie.domain) parts.push(`Domain=${cookie.domain}`);
  if (cookie.path) parts.push(`Path=${cookie.path}`);
  if (cookie.expires !== undefined) {
    parts.push(`Expires=${new Date(cookie.expires).toUTCString()}`);
  }
  if (cookie.maxAge !== undefined) parts.push(`Max-Age=${cookie.maxAge}`);
  if (cookie.secure) parts.push("Secure");
  if (cookie.httpOnly) parts.push("HttpOnly");
  if (cookie.sameSite) parts.push(`SameSite=${cookie.sameSite}`);
  return parts.join("; ");
}

/** Core Tools-like console lines: `[time] name: message`, warnings and errors on stderr. */
export function consoleLogHandler(functionName: string): LogHandler {
  return (level, ...args) => {
    const text = args
      .map((a) =>
        typeof a === "string" ? a : a instanceof Error ? (a.stack ?? a.message) : JSON.stringify(a),
      )
      .join(" ");
    const line = `[${new Date().toISOString()}] ${functionName}: ${text}`;
    if (level === "error" || level === "critical") console.error(line);
    else if (level === "warning") console.warn(line);
    else if (level !== "trace" && level !== "debug" && level !== "none") console.log(line);
  };
}
