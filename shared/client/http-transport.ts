import type { z } from "zod";

import { HeraldError, toError } from "../errors";
import type { EventPage } from "../events/event-log";
import type { NotificationRequest } from "../notifications/schema";
import type { NotificationStatus, RecipientState } from "../notifications/status";
import {
  answerProblem,
  changeAnswerSchema,
  recipientChangeAnswerSchema,
  statusAnswerSchema,
} from "./answers";
import type { ChangeAnswer, NotificationChange } from "./changes";
import {
  ChangeRefusedError,
  HttpResponseError,
  NotificationNotFoundError,
  RecipientNotFoundError,
  type RequestIssue,
  RequestValidationError,
} from "./client-errors";
import type { RecipientChange, RecipientChangeAnswer } from "./recipient-changes";
import type { NotificationTransport, SendEvents } from "./transport";

export type FetchLike = typeof fetch;

export interface HttpTransportOptions {
  /** Herald's function app, e.g. `https://herald-func.azurewebsites.net` or `http://127.0.0.1:7071`. */
  readonly endpoint: string;
  /** Sent as `x-functions-key` (the function or host key). */
  readonly functionKey?: string | undefined;
  /** Extra headers on every call (e.g. an `Authorization` header in front of Entra-protected apps). */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Requests in flight at once for `sendMany` (default 8). */
  readonly concurrency?: number | undefined;
  /** Per call (default 30 s). */
  readonly timeoutMs?: number | undefined;
  /** Tries per request for 429, 502/503/504 and network errors (default 4). */
  readonly maxTries?: number | undefined;
  readonly fetch?: FetchLike | undefined;
  /** For tests: how to wait between tries. */
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
}

export interface StatusOptions {
  /**
   * The request's tenant. Requests are identified by (tenant, id): without it the endpoint
   * answers 400 when several tenants use the id.
   */
  readonly tenantId?: string;
  /** Only recipients in this state. */
  readonly state?: RecipientState;
  /** At most this many recipients listed (the endpoint's default is 1,000). */
  readonly limit?: number;
}

const RETRIABLE = new Set([408, 429, 502, 503, 504]);
const MAX_RETRY_WAIT_MS = 30_000;

/** `https://app/`, `https://app/api` and `https://app/api/notifications` all mean the same app. */
export function notificationsUrl(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new HeraldError(`Invalid endpoint URL "${endpoint}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new HeraldError(`Invalid endpoint URL "${endpoint}": must be http(s)`);
  }
  const base = url.pathname.replace(/\/+$/, "").replace(/\/api(\/notifications)?$/, "");
  url.pathname = `${base}/api/notifications`;
  url.search = "";
  url.hash = "";
  return url;
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/** Retry-After in seconds or as an HTTP date; undefined when absent or unusable. */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text.slice(0, 500);
  }
}

/** fetch's "fetch failed" hides the reason in `cause` (ECONNREFUSED, ENOTFOUND, a timeout). */
function networkReason(error: unknown): string {
  const e = error as {
    name?: unknown;
    message?: unknown;
    cause?: { code?: unknown; message?: unknown };
  };
  if (e?.name === "TimeoutError") return "timed out";
  if (typeof e?.cause?.code === "string") return e.cause.code;
  if (typeof e?.cause?.message === "string") return e.cause.message;
  return typeof e?.message === "string" ? e.message : toError(error).message;
}

function fieldErrors(body: unknown): RequestIssue[] {
  const errors = (body as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(errors)) return [];
  return errors.flatMap((e: unknown) => {
    const { path, message } = (e ?? {}) as { path?: unknown; message?: unknown };
    return typeof path === "string" && typeof message === "string" ? [{ path, message }] : [];
  });
}

/**
 * Herald's 409 for an id taken by different content. Another 409 (a proxy, another app at this
 * URL) is not proof that the request was refused for that reason: it stays an error as it is.
 */
function isConflict(response: Response, body: unknown): boolean {
  return response.status === 409 && (body as { error?: unknown } | undefined)?.error === "conflict";
}

function serverMessage(body: unknown): string | undefined {
  if (typeof body === "string") return body;
  const candidate = body as { error?: unknown; message?: unknown } | undefined;
  if (typeof candidate?.error === "string") return candidate.error;
  if (typeof candidate?.message === "string") return candidate.message;
  return undefined;
}

/**
 * Herald's HTTP API: `POST /api/notifications` (enqueue) and `GET /api/notifications/{id}`
 * (status), with the function key in `x-functions-key`. Retries what is worth retrying: a POST
 * repeated because its answer was lost is a replay (same tenant, id and content), which the
 * endpoint accepts again with 202 and never queues twice. A 409 means the id is taken in the
 * tenant by a request with *different* content: refused, nothing queued, reported as a conflict.
 */
export class HttpTransport implements NotificationTransport {
  readonly description: string;
  readonly confirmsAcceptance = true;
  private readonly url: URL;
  private readonly fetch: FetchLike;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly options: HttpTransportOptions) {
    this.url = notificationsUrl(options.endpoint);
    this.description = this.url.toString();
    this.fetch = options.fetch ?? globalThis.fetch;
    this.sleep = options.sleep ?? defaultSleep;
  }

  async send(requests: readonly NotificationRequest[], events: SendEvents): Promise<void> {
    let next = 0;
    let failure: Error | undefined;
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < requests.length) {
        const request = requests[next++]!;
        try {
          if ((await this.post(request)) === "conflict") events.onConflict(request.id);
          else events.onSent([request.id]);
        } catch (error) {
          failure ??= toError(error);
        }
      }
    };
    const workers = Math.max(1, Math.min(this.options.concurrency ?? 8, requests.length));
    await Promise.all(Array.from({ length: workers }, worker));
    if (failure !== undefined) throw failure;
  }

  /** The request's per-recipient states, or undefined when the endpoint has no such id. */
  async status(id: string, query: StatusOptions = {}): Promise<NotificationStatus | undefined> {
    const url = new URL(`${this.url.pathname}/${encodeURIComponent(id)}`, this.url);
    if (query.tenantId !== undefined) url.searchParams.set("tenantId", query.tenantId);
    if (query.state !== undefined) url.searchParams.set("state", query.state);
    if (query.limit !== undefined) url.searchParams.set("limit", String(query.limit));
    const { response, body } = await this.call("GET", url, undefined);
    if (response.status === 404) return undefined;
    if (response.ok) {
      const status = statusAnswerSchema.safeParse(body);
      if (!status.success) throw this.unreadable(response, body, `status of ${id}`, status.error);
      return status.data as unknown as NotificationStatus;
    }
    throw this.failure(response, body, `status of ${id}`);
  }

  /**
   * `PATCH` (update) or `DELETE` (recall) `/api/notifications/{id}?tenantId=`. Retried like a
   * send; a repeated recall is harmless, a repeated update is one more revision of the same text.
   */
  async change(change: NotificationChange): Promise<ChangeAnswer> {
    const url = new URL(`${this.url.pathname}/${encodeURIComponent(change.id)}`, this.url);
    url.searchParams.set("tenantId", change.tenantId);
    const { schemaVersion: _v, operation, id: _id, tenantId: _t, ...fields } = change;
    const { response, body } =
      operation === "update"
        ? await this.call("PATCH", url, JSON.stringify(fields))
        : await this.call("DELETE", url, undefined);
    if (response.ok) {
      const answer = changeAnswerSchema.safeParse(body);
      if (!answer.success)
        throw this.unreadable(response, body, `${operation} of ${change.id}`, answer.error);
      return { kind: "accepted", revision: answer.data.revision, recalled: answer.data.recalled };
    }
    throw this.refusal(response, body, change.id, operation);
  }

  /**
   * `PATCH /api/notifications/{id}/recipients/{recipient}?tenantId=`: one person's copy.
   * Retried like a send: a repeated one is a replay (Herald answers the same, changes once).
   */
  async changeRecipient(change: RecipientChange): Promise<RecipientChangeAnswer> {
    const path = `${encodeURIComponent(change.id)}/recipients/${encodeURIComponent(change.recipient)}`;
    const url = new URL(`${this.url.pathname}/${path}`, this.url);
    url.searchParams.set("tenantId", change.tenantId);
    const { response, body } = await this.call("PATCH", url, JSON.stringify(change.content));
    if (response.ok) {
      const answer = recipientChangeAnswerSchema.safeParse(body);
      if (!answer.success)
        throw this.unreadable(response, body, `update of ${change.id}`, answer.error);
      const { recipient, revision, override } = answer.data;
      return { kind: "accepted", recipient, revision, override };
    }
    if (response.status === 404 && serverMessage(body) === "recipient not found")
      throw new RecipientNotFoundError(change.id, change.recipient);
    throw this.refusal(response, body, change.id, "update");
  }

  /** Why Herald did not take a change: the error for the caller to catch. */
  private refusal(response: Response, body: unknown, id: string, operation: string): Error {
    if (response.status === 404 && serverMessage(body) === "not found")
      return new NotificationNotFoundError(id);
    if (isConflict(response, body))
      return new ChangeRefusedError(
        id,
        (body as { message?: unknown }).message?.toString() ?? "refused",
      );
    if (response.status === 400) {
      const issues = fieldErrors(body);
      if (issues.length > 0)
        return new RequestValidationError(issues, `The endpoint refused the ${operation}`);
    }
    return this.failure(response, body, `${operation} of ${id}`);
  }

  /**
   * One page of the request's events (`GET /api/notifications/{id}/events`) after `after` (a
   * page's `next`), or undefined when the endpoint has no such request (yet).
   */
  async events(
    id: string,
    tenantId: string,
    query: { readonly after?: string; readonly limit?: number } = {},
  ): Promise<EventPage | undefined> {
    const url = new URL(`${this.url.pathname}/${encodeURIComponent(id)}/events`, this.url);
    url.searchParams.set("tenantId", tenantId);
    if (query.after !== undefined && query.after !== "") url.searchParams.set("after", query.after);
    if (query.limit !== undefined) url.searchParams.set("limit", String(query.limit));
    const { response, body } = await this.call("GET", url, undefined);
    if (response.status === 404) return undefined;
    if (response.ok) return body as EventPage;
    throw this.failure(response, body, `events of ${id}`);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private async post(request: NotificationRequest): Promise<"accepted" | "conflict"> {
    const { response, body } = await this.call("POST", this.url, JSON.stringify(request));
    if (response.ok) return "accepted";
    if (isConflict(response, body)) return "conflict";
    if (response.status === 400) {
      const issues = fieldErrors(body);
      if (issues.length > 0) {
        throw new RequestValidationError(issues, `The endpoint refused request ${request.id}`);
      }
    }
    throw this.failure(response, body, `request ${request.id}`);
  }

  /**
   * A success whose answer is not Herald's (a proxy's page, another app at the URL): the change
   * may have been taken or not, and the caller must not go on as if it knew the revision.
   */
  private unreadable(
    response: Response,
    body: unknown,
    what: string,
    error: z.ZodError,
  ): HttpResponseError {
    return new HttpResponseError(
      `${this.url.origin} answered ${response.status} for ${what}, but not as Herald answers (${answerProblem(error)}): is it Herald's function app?`,
      response.status,
      body,
    );
  }

  private failure(response: Response, body: unknown, what: string): HttpResponseError {
    // Field errors say what to change (a status read of an id several tenants use names tenantId).
    const fields = fieldErrors(body).map((e) => `${e.path} ${e.message}`);
    const reason = fields.length > 0 ? fields.join("; ") : serverMessage(body);
    const hint =
      response.status === 401 || response.status === 403
        ? " (check the function key: --function-key or HERALD_FUNCTION_KEY)"
        : response.status === 404
          ? ` (is ${this.url.origin} Herald's function app?)`
          : "";
    return new HttpResponseError(
      `${this.url.origin} answered ${response.status} for ${what}${reason !== undefined ? `: ${reason}` : ""}${hint}`,
      response.status,
      body,
    );
  }

  private async call(
    method: "GET" | "POST" | "PATCH" | "DELETE",
    url: URL,
    body: string | undefined,
  ): Promise<{ response: Response; body: unknown }> {
    const maxTries = Math.max(1, this.options.maxTries ?? 4);
    const headers: Record<string, string> = {
      accept: "application/json",
      ...this.options.headers,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...(this.options.functionKey !== undefined
        ? { "x-functions-key": this.options.functionKey }
        : {}),
    };
    for (let attempt = 1; ; attempt += 1) {
      let response: Response;
      try {
        response = await this.fetch(url, {
          method,
          headers,
          ...(body !== undefined ? { body } : {}),
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
        });
      } catch (error) {
        if (attempt >= maxTries) {
          throw new HeraldError(`Could not reach ${url.origin}: ${networkReason(error)}`, {
            cause: error,
          });
        }
        await this.sleep(this.backoff(attempt, undefined));
        continue;
      }
      const parsed = await readJson(response);
      if (RETRIABLE.has(response.status) && attempt < maxTries) {
        await this.sleep(this.backoff(attempt, retryAfterMs(response.headers.get("retry-after"))));
        continue;
      }
      return { response, body: parsed };
    }
  }

  private backoff(attempt: number, retryAfter: number | undefined): number {
    if (retryAfter !== undefined) return Math.min(retryAfter, MAX_RETRY_WAIT_MS);
    const base = Math.min(500 * 2 ** (attempt - 1), MAX_RETRY_WAIT_MS);
    return base / 2 + Math.random() * (base / 2);
  }
}
