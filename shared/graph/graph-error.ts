import { parseRetryAfter } from "../connector/teams-connector";
import { HeraldError } from "../errors";
import { type GraphOperation, type GraphPermission, PERMISSION_FOR } from "./permissions";

/**
 * What went wrong with a Graph call, as the caller acts on it:
 * - `throttled`: 429; retry after `retryAfterMs` (Retry-After) or back off;
 * - `transient`: 5xx, 408, a timeout, a network error, no token; back off and retry;
 * - `forbidden`: 403; an admin must grant `permission` (or the app is blocked); no retry;
 * - `unauthorized`: 401; the token was refused (wrong tenant or audience); no retry;
 * - `not-found`: 404 where the operation has no "not found" answer of its own;
 * - `bad-request`: 400 and any other 4xx; the request is wrong; no retry;
 * - `unreadable`: a success whose body cannot be read (not JSON, not the documented shape: a
 *   proxy's page, a cut-off answer); retry, as after no answer at all;
 * - `invalid-response`: an answer Herald must not act on (a next-page link off the configured
 *   endpoint); no retry.
 */
export type GraphErrorKind =
  | "throttled"
  | "transient"
  | "forbidden"
  | "unauthorized"
  | "not-found"
  | "bad-request"
  | "unreadable"
  | "invalid-response";

/**
 * Graph's throttling windows are seconds to minutes (https://learn.microsoft.com/graph/throttling-limits):
 * a longer Retry-After is clamped to this, after which a still-throttled Graph says so again.
 */
export const MAX_GRAPH_RETRY_AFTER_MS = 5 * 60 * 1000;

export interface GraphErrorDetail {
  readonly kind: GraphErrorKind;
  readonly operation: GraphOperation;
  /** HTTP status; undefined when no answer came (timeout, network error, no token). */
  readonly status?: number | undefined;
  /** Graph's error code (`Authorization_RequestDenied`, `Request_ResourceNotFound`, …). */
  readonly code?: string | undefined;
  /** Graph's `request-id`, for a support case. */
  readonly requestId?: string | undefined;
  readonly retryAfterMs?: number | undefined;
  /** What went wrong, in Herald's words: never Graph's message, which may quote a UPN. */
  readonly reason: string;
}

export class GraphError extends HeraldError {
  readonly kind: GraphErrorKind;
  readonly operation: GraphOperation;
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly requestId: string | undefined;
  readonly retryAfterMs: number | undefined;
  /** For `forbidden`: the application permission the operation needs. */
  readonly permission: GraphPermission | undefined;

  constructor(detail: GraphErrorDetail, options?: ErrorOptions) {
    const permission = detail.kind === "forbidden" ? PERMISSION_FOR[detail.operation] : undefined;
    super(`Microsoft Graph ${detail.operation}: ${detail.reason}`, options);
    this.kind = detail.kind;
    this.operation = detail.operation;
    this.status = detail.status;
    this.code = detail.code;
    this.requestId = detail.requestId;
    this.retryAfterMs = detail.retryAfterMs;
    this.permission = permission;
  }

  /** Whether a later attempt may succeed (the caller schedules it; the port never retries). */
  get retryable(): boolean {
    return this.kind === "throttled" || this.kind === "transient" || this.kind === "unreadable";
  }
}

export function isGraphError(error: unknown): error is GraphError {
  return error instanceof GraphError;
}

/** The answer's parts the classifier reads. */
export interface GraphAnswer {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  /** Parsed JSON body, or undefined. */
  readonly body: unknown;
}

function errorCode(body: unknown): { code?: string; requestId?: string } {
  if (typeof body !== "object" || body === null) return {};
  const error = (body as { error?: unknown }).error;
  if (typeof error !== "object" || error === null) return {};
  const { code, innerError } = error as { code?: unknown; innerError?: unknown };
  const inner =
    typeof innerError === "object" && innerError !== null
      ? (innerError as Record<string, unknown>)["request-id"]
      : undefined;
  return {
    ...(typeof code === "string" ? { code: code.slice(0, 100) } : {}),
    ...(typeof inner === "string" ? { requestId: inner.slice(0, 100) } : {}),
  };
}

function forbiddenReason(operation: GraphOperation): string {
  const permission = PERMISSION_FOR[operation];
  const hint =
    operation === "findAppByExternalId"
      ? " (or set TeamsAppCatalogId to skip the catalog lookup)"
      : permission === "TeamsAppInstallation.ReadWriteSelfForUser.All"
        ? " (and check that the Teams app manifest's webApplicationInfo.id is Herald's app id, and that an app permission policy does not block the app)"
        : "";
  return `403 forbidden: grant Herald's identity the Microsoft Graph application permission ${permission} with admin consent (npm run grant:graph)${hint}`;
}

/** The `GraphError` for an answer that is not the operation's success. */
export function classifyGraphAnswer(
  operation: GraphOperation,
  answer: GraphAnswer,
  now: number = Date.now(),
): GraphError {
  const { status } = answer;
  const { code, requestId } = errorCode(answer.body);
  const base = { operation, status, code, requestId };
  const retryAfter = parseRetryAfter(answer.headers.get("retry-after") ?? undefined, now);
  const retryAfterMs =
    retryAfter === undefined ? undefined : Math.min(MAX_GRAPH_RETRY_AFTER_MS, retryAfter);
  const suffix = code === undefined ? "" : ` (${code})`;
  if (status === 429)
    return new GraphError({
      ...base,
      kind: "throttled",
      retryAfterMs,
      reason: `429 throttled${suffix}`,
    });
  if (status >= 500 || status === 408)
    return new GraphError({
      ...base,
      kind: "transient",
      retryAfterMs,
      reason: `${status}${suffix}`,
    });
  if (status === 403)
    return new GraphError({
      ...base,
      kind: "forbidden",
      reason: `${forbiddenReason(operation)}${suffix}`,
    });
  if (status === 401)
    return new GraphError({
      ...base,
      kind: "unauthorized",
      reason: `401: the token was refused${suffix}; check that Herald's identity is in the tenant and GraphEndpoint matches its cloud`,
    });
  if (status === 404) return new GraphError({ ...base, kind: "not-found", reason: `404${suffix}` });
  if (status >= 400)
    return new GraphError({ ...base, kind: "bad-request", reason: `${status}${suffix}` });
  return new GraphError({
    ...base,
    kind: "invalid-response",
    reason: `unexpected status ${status}`,
  });
}

/** A call that got no answer: a timeout, a refused or reset connection. */
export function transportFailure(operation: GraphOperation, error: unknown): GraphError {
  const name = error instanceof Error ? error.name : typeof error;
  const cause: unknown = error instanceof Error ? error.cause : undefined;
  const rawCode =
    typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined;
  const code = typeof rawCode === "string" ? rawCode.slice(0, 50) : undefined;
  const reason =
    name === "TimeoutError" ? "no answer before the deadline" : `no answer (${code ?? name})`;
  return new GraphError({ operation, kind: "transient", code, reason }, { cause: error });
}
