import { statusCodeOf } from "../errors";

/**
 * The narrow port the notification processor talks to Teams through: create a 1:1 chat, post
 * an activity, replace or delete one it posted. Expected failures come back as tagged results
 * (the processor decides what each means for the delivery); only bugs and the unexplainable are
 * thrown. An answer Teams gave that cannot be read (not JSON, no id where one is due) is a
 * `transient` failure, as no answer at all is: a later attempt may get a readable one.
 */
export interface TeamsConnector {
  createPersonalConversation(
    input: CreatePersonalConversation,
    hooks?: CallHooks,
  ): Promise<CreateResult>;
  sendActivity(input: SendActivity, hooks?: CallHooks): Promise<SendResult>;
  /**
   * `PUT /v3/conversations/{id}/activities/{activityId}`: replaces a sent activity in place
   * (Teams marks the message edited); the new activity need not be of the same kind.
   */
  updateActivity(input: UpdateActivity, hooks?: CallHooks): Promise<UpdateResult>;
  /** `DELETE /v3/conversations/{id}/activities/{activityId}`: Teams leaves a placeholder. */
  deleteActivity(input: DeleteActivity, hooks?: CallHooks): Promise<DeleteResult>;
  /**
   * `GET /v3/conversations/{id}/members/{member}`: who a member of a conversation is (their
   * `29:` id above all). Proactive install learns a user this way from the chat Graph names.
   */
  getMember(input: GetMember): Promise<MemberResult>;
}

/** What a caller is told about a call besides its answer. */
export interface CallHooks {
  /**
   * The call's request, sent over a new connection, was handed to the operating system: when
   * Teams starts counting it, a handshake later than the call began (see wire-time.ts). Not
   * called for a request on a kept-alive socket, which leaves as it begins.
   */
  readonly onWire?: () => void;
}

export interface GetMember {
  readonly serviceUrl: string;
  readonly conversationId: string;
  /** The member's `29:` id or AAD object id (Teams accepts either). */
  readonly memberId: string;
}

/** A conversation member as Teams describes them (`TeamsChannelAccount`). */
export interface ConversationMember {
  readonly teamsUserId: string;
  readonly aadObjectId: string | undefined;
  readonly name: string | undefined;
  readonly userPrincipalName: string | undefined;
  readonly email: string | undefined;
}

export interface CreatePersonalConversation {
  readonly serviceUrl: string;
  readonly tenantId: string;
  /** The user's `29:` id (unique per bot). */
  readonly teamsUserId: string;
}

export interface SendActivity {
  readonly serviceUrl: string;
  readonly conversationId: string;
  readonly activity: Readonly<Record<string, unknown>>;
}

/** An activity Herald posted: the activity id its send returned is the only handle on it. */
export interface SentActivity {
  readonly serviceUrl: string;
  readonly conversationId: string;
  readonly activityId: string;
}

export interface UpdateActivity extends SentActivity {
  readonly activity: Readonly<Record<string, unknown>>;
}

export type DeleteActivity = SentActivity;

/** What Teams said, for the ledger and the logs (never the request body). */
export interface FailureDetail {
  /** HTTP status; undefined for a network error or a timeout. */
  readonly status: number | undefined;
  /** Teams' error code (`ConversationBlockedByUser`, …) or the network error code. */
  readonly code: string | undefined;
  readonly subCode?: string | undefined;
  readonly message: string;
}

/**
 * The outcome classes of TEAMS-FACTS.md's status-code table:
 * - `throttled`: 429; retry after `retryAfterMs` (Retry-After) or back off;
 * - `transient`: 412, 502, 503, 504, 408, timeouts, connection errors, and a success answer
 *   whose body cannot be read; back off and retry;
 * - `conversationGone`: 404 ConversationNotFound; drop the stored id, create it again once;
 * - `recipientGone`: 403 (blocked, uninstalled, disabled by admin…); mark the user, no retry;
 * - `rejected`: 400 / 413: the payload is wrong; record, no retry;
 * - `failed`: 500, 401 and anything else Teams answered; record, no retry (per the docs).
 */
export type ConnectorFailure = FailureDetail &
  (
    | { readonly kind: "throttled"; readonly retryAfterMs: number | undefined }
    | { readonly kind: "transient"; readonly retryAfterMs: number | undefined }
    | { readonly kind: "conversationGone" }
    | { readonly kind: "recipientGone" }
    | { readonly kind: "rejected" }
    | { readonly kind: "failed" }
  );

export type CreateResult =
  { readonly kind: "created"; readonly conversationId: string } | ConnectorFailure;
export type SendResult = { readonly kind: "sent"; readonly activityId: string } | ConnectorFailure;
export type MemberResult =
  { readonly kind: "found"; readonly member: ConversationMember } | ConnectorFailure;
export type UpdateResult = { readonly kind: "updated" } | ConnectorFailure;
export type DeleteResult = { readonly kind: "deleted" } | ConnectorFailure;

const TRANSIENT_STATUSES = new Set([408, 412, 502, 503, 504]);

/** Node / undici / core-rest-pipeline codes for a call that never got an HTTP answer. */
const NETWORK_ERROR_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "REQUEST_SEND_ERROR",
  "TIMEOUT",
]);

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  details?: unknown;
  body?: unknown;
  cause?: unknown;
  response?: {
    status?: unknown;
    headers?: { get?: (name: string) => string | undefined | null } | Record<string, unknown>;
    bodyAsText?: unknown;
    parsedBody?: unknown;
  };
}

function asObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null
    ? (value as Record<string, unknown>)
    : undefined;
}

/** Teams answers errors as `{ "error": { "code", "message", "subCode"? } }`. */
function teamsErrorBody(error: ErrorShape): { code?: string; message?: string; subCode?: string } {
  const candidates: unknown[] = [error.details, error.response?.parsedBody, error.body];
  const text = error.response?.bodyAsText;
  if (typeof text === "string" && text.startsWith("{")) {
    try {
      candidates.push(JSON.parse(text));
    } catch {
      // not JSON: nothing to learn from it
    }
  }
  for (const candidate of candidates) {
    const inner = asObject(asObject(candidate)?.error);
    if (inner === undefined) continue;
    return {
      ...(typeof inner.code === "string" ? { code: inner.code } : {}),
      ...(typeof inner.message === "string" ? { message: inner.message } : {}),
      ...(typeof inner.subCode === "string" ? { subCode: inner.subCode } : {}),
    };
  }
  return {};
}

function header(error: ErrorShape, name: string): string | undefined {
  const headers = error.response?.headers;
  if (headers === undefined) return undefined;
  const get = (headers as { get?: unknown }).get;
  if (typeof get === "function") {
    const value: unknown = (get as (n: string) => unknown).call(headers, name);
    return typeof value === "string" ? value : undefined;
  }
  const value = (headers as Record<string, unknown>)[name];
  return typeof value === "string" ? value : undefined;
}

/**
 * The longest Retry-After Herald honours: one hour, Teams' longest rate window. A longer one
 * (a huge number of seconds, a date in the year 10000) would park a conversation for good or
 * overflow a `Date` (every later retry would throw); after an hour the call is simply tried
 * again, and a still-throttled Teams says so again.
 */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

/**
 * Retry-After (RFC 9110 §10.2.3: delta-seconds or an HTTP date) in ms from `now`, clamped to
 * 0 … `MAX_RETRY_AFTER_MS`; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === "" || trimmed.length > 64) return undefined;
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(trimmed)) {
    ms = Number(trimmed) * 1000;
  } else {
    const at = Date.parse(trimmed);
    if (!Number.isFinite(at) || !Number.isFinite(now)) return undefined;
    ms = at - now;
  }
  if (Number.isNaN(ms)) return undefined;
  return Math.round(Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms)));
}

function networkCode(error: ErrorShape): string | undefined {
  for (let e: unknown = error, depth = 0; e !== undefined && depth < 4; depth++) {
    const shape = asObject(e);
    if (shape === undefined) return undefined;
    if (typeof shape.code === "string" && NETWORK_ERROR_CODES.has(shape.code)) return shape.code;
    if (shape.name === "AbortError" || shape.name === "TimeoutError") return "TIMEOUT";
    e = shape.cause;
  }
  return undefined;
}

/**
 * Maps an error thrown by the Bot Connector client to the outcome classes above. Returns
 * undefined for an error that is not a Teams answer or a network failure (a bug, a
 * credential problem): the caller rethrows it so the broker's redelivery applies.
 */
export function classifyConnectorError(error: unknown): ConnectorFailure | undefined {
  const shape = (asObject(error) ?? {}) as ErrorShape;
  const rawStatus = statusCodeOf(error) ?? statusCodeOf(shape.response);
  const status = rawStatus !== undefined && rawStatus > 0 ? rawStatus : undefined;
  const body = teamsErrorBody(shape);
  const message =
    body.message ?? (typeof shape.message === "string" ? shape.message : "unknown error");
  if (status === undefined) {
    const code = networkCode(shape);
    if (code === undefined) return undefined;
    return { kind: "transient", status: undefined, code, message, retryAfterMs: undefined };
  }
  // A success whose body the client could not parse (a proxy's page, a cut-off answer).
  if (status >= 200 && status < 300) return unreadableAnswer(status);
  const detail = { status, code: body.code, subCode: body.subCode, message };
  const retryAfterMs = parseRetryAfter(header(shape, "retry-after"));
  if (status === 429) return { kind: "throttled", ...detail, retryAfterMs };
  if (TRANSIENT_STATUSES.has(status)) return { kind: "transient", ...detail, retryAfterMs };
  if (status === 404) return { kind: "conversationGone", ...detail };
  if (status === 403) return { kind: "recipientGone", ...detail };
  if (status === 400 || status === 413) return { kind: "rejected", ...detail };
  return { kind: "failed", ...detail };
}

/**
 * A Teams answer Herald cannot read: transient, as no answer is (the call may or may not have
 * taken effect; a send retried after it risks the same second copy a timed-out send does).
 * The body itself is never quoted: it may hold anything.
 */
export function unreadableAnswer(status: number | undefined): ConnectorFailure {
  return {
    kind: "transient",
    status,
    code: "UnreadableAnswer",
    message: `Teams answered${status === undefined ? "" : ` ${status}`} with a body Herald cannot read`,
    retryAfterMs: undefined,
  };
}

/** A one-line description for the ledger's `lastError` and for logs. */
export function describeFailure(failure: FailureDetail): string {
  const parts = [
    failure.status === undefined ? "no answer" : `HTTP ${failure.status}`,
    failure.code,
    failure.subCode,
  ].filter((p): p is string => p !== undefined && p !== "");
  return `${parts.join(" ")}: ${failure.message}`.slice(0, 500);
}
