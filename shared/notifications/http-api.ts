import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";

import { DEFAULT_EVENT_PAGE, type EventLog, MAX_EVENT_PAGE } from "../events/event-log";
import { contextLogger } from "../logging";
import type { FieldError } from "../validation/json-guard";
import type { NotificationIntake } from "./intake";
import type { ChangeResult, NotificationRevisions } from "./revisions";
import { parseNotificationRecall, parseNotificationUpdate } from "./schema";
import { isGuid, isRequestId } from "./schema";
import {
  type NotificationStatusReader,
  RECIPIENT_STATES,
  type RecipientState,
  type StatusQuery,
} from "./status";

/**
 * The notifications HTTP API behind `functions/notifications-api.ts`: `POST /api/notifications`
 * (validate and enqueue a request), `GET /api/notifications/{id}` (per-recipient states) and
 * `GET /api/notifications/{id}/events` (the request's events, paged).
 * Each handler parses what the request says into one value (`Parsed`: the value, or the answer
 * that refuses it), calls the intake or the status reader, and maps the result to a response.
 */

export type ApiHandler = (
  request: HttpRequest,
  context: InvocationContext,
) => Promise<HttpResponseInit>;

export interface NotificationsApi {
  readonly enqueue: ApiHandler;
  readonly status: ApiHandler;
  /** `PATCH /api/notifications/{id}?tenantId=`: a new revision of the message (or its time). */
  readonly update: ApiHandler;
  /** `DELETE /api/notifications/{id}?tenantId=`: the request recalled. */
  readonly recall: ApiHandler;
  readonly events: ApiHandler;
}

/** What the handlers need of the notification services (tests give their own). */
export interface NotificationsApiServices {
  readonly intake: Pick<NotificationIntake, "submit">;
  readonly status: Pick<NotificationStatusReader, "lookup">;
  readonly revisions: Pick<NotificationRevisions, "update" | "recall">;
  readonly eventLog: Pick<EventLog, "read">;
}

/** Request bodies above this are refused before parsing (a 10,000-recipient request is ~0.6 MB). */
const MAX_BODY_BYTES = 2 * 1024 * 1024;
const MAX_LIMIT = 10_000;

/** A request part parsed, or the answer that refuses it (the one parse shape of the API). */
type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly response: HttpResponseInit };

function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): HttpResponseInit {
  return { status, jsonBody: body, headers: { "content-type": "application/json", ...headers } };
}

function refused(
  status: number,
  error: string,
  errors: readonly FieldError[],
): { ok: false; response: HttpResponseInit } {
  return { ok: false, response: json(status, { error, errors }) };
}

function statusUrl(request: HttpRequest, id: string, tenantId: string): string {
  const url = new URL(`/api/notifications/${encodeURIComponent(id)}`, request.url);
  url.searchParams.set("tenantId", tenantId);
  return url.toString();
}

/** The body as JSON, within the size limit. */
async function jsonBody(request: HttpRequest): Promise<Parsed<unknown>> {
  const text = await request.text();
  if (Buffer.byteLength(text, "utf8") > MAX_BODY_BYTES)
    return refused(413, "request too large", [
      { path: "(body)", message: `must be at most ${MAX_BODY_BYTES} bytes` },
    ]);
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return refused(400, "invalid request", [{ path: "(body)", message: "must be a JSON object" }]);
  }
}

/**
 * `GET /api/notifications/{id}?tenantId=&state=&limit=`: which request, and which of its
 * recipients to list.
 */
function statusRequest(
  request: HttpRequest,
): Parsed<{ key: { id: string; tenantId: string | undefined }; query: StatusQuery }> {
  const id = request.params.id ?? "";
  if (!isRequestId(id))
    return refused(400, "invalid id", [{ path: "id", message: "is not a valid request id" }]);
  const state = request.query.get("state");
  if (state !== null && !RECIPIENT_STATES.includes(state as RecipientState))
    return refused(400, "invalid query", [
      { path: "state", message: `must be one of ${RECIPIENT_STATES.join(", ")}` },
    ]);
  const limitParam = request.query.get("limit");
  const limit = limitParam === null ? undefined : Number(limitParam);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0 && limit <= MAX_LIMIT))
    return refused(400, "invalid query", [
      { path: "limit", message: `must be an integer from 0 to ${MAX_LIMIT}` },
    ]);
  const tenantId = request.query.get("tenantId") ?? undefined;
  if (tenantId !== undefined && !isGuid(tenantId))
    return refused(400, "invalid query", [{ path: "tenantId", message: "must be a GUID" }]);
  return {
    ok: true,
    value: {
      key: { id, tenantId },
      query: {
        ...(state !== null ? { state: state as RecipientState } : {}),
        ...(limit !== undefined ? { limit } : {}),
      },
    },
  };
}

/**
 * One request, named by path and `tenantId` (required: `PATCH`, `DELETE` and the events name
 * exactly one request).
 */
function namedRequest(request: HttpRequest): Parsed<{ id: string; tenantId: string }> {
  const id = request.params.id ?? "";
  if (!isRequestId(id))
    return refused(400, "invalid id", [{ path: "id", message: "is not a valid request id" }]);
  const tenantId = request.query.get("tenantId");
  if (tenantId === null || !isGuid(tenantId))
    return refused(400, "invalid query", [
      { path: "tenantId", message: "is required: the request's tenant (a GUID)" },
    ]);
  return { ok: true, value: { id, tenantId } };
}

/** A change's result as the API answers it. */
function changeResponse(request: HttpRequest, result: ChangeResult): HttpResponseInit {
  switch (result.kind) {
    case "accepted": {
      const url = statusUrl(request, result.id, result.tenantId);
      return json(
        202,
        { id: result.id, revision: result.revision, recalled: result.recalled, statusUrl: url },
        { location: url },
      );
    }
    case "not-found":
      return json(404, { error: "not found", id: result.id });
    case "invalid":
      return json(400, { error: "invalid request", errors: result.errors });
    case "refused":
      return json(409, { error: "conflict", message: result.message, id: result.id });
  }
}

/** `GET /api/notifications/{id}/events?tenantId=&after=&limit=`: which request, from where. */
function eventsRequest(
  request: HttpRequest,
): Parsed<{ key: { id: string; tenantId: string }; after?: string; limit: number }> {
  const named = namedRequest(request);
  if (!named.ok) return named;
  const limitParam = request.query.get("limit");
  const limit = limitParam === null ? DEFAULT_EVENT_PAGE : Number(limitParam);
  if (!(Number.isInteger(limit) && limit >= 1 && limit <= MAX_EVENT_PAGE))
    return refused(400, "invalid query", [
      { path: "limit", message: `must be an integer from 1 to ${MAX_EVENT_PAGE}` },
    ]);
  const after = request.query.get("after") ?? undefined;
  if (after !== undefined && after.length > 1_000)
    return refused(400, "invalid query", [{ path: "after", message: "is not a cursor" }]);
  return {
    ok: true,
    value: { key: named.value, ...(after !== undefined ? { after } : {}), limit },
  };
}

/** Handlers over given services: the Functions app passes the process's, tests their own. */
export function createNotificationsApi(services: () => NotificationsApiServices): NotificationsApi {
  const enqueue: ApiHandler = async (request, context) => {
    const body = await jsonBody(request);
    if (!body.ok) return body.response;
    const result = await services().intake.submit(body.value, contextLogger(context));
    switch (result.kind) {
      case "invalid":
        return json(400, { error: "invalid request", errors: result.errors });
      case "conflict":
        // Nothing of the stored request: only that the id is taken.
        return json(409, {
          error: "conflict",
          message:
            "this request id is already used in this tenant by a request with different content; nothing of this request was queued: use a new id",
          id: result.id,
        });
      case "accepted": {
        const url = statusUrl(request, result.id, result.tenantId);
        const scheduled = result.scheduledFor !== undefined;
        return json(
          202,
          {
            id: result.id,
            state: scheduled ? "scheduled" : "queued",
            ...(scheduled ? { scheduledFor: result.scheduledFor } : {}),
            statusUrl: url,
          },
          { location: url },
        );
      }
    }
  };

  const status: ApiHandler = async (request) => {
    const parsed = statusRequest(request);
    if (!parsed.ok) return parsed.response;
    const { key, query } = parsed.value;
    const found = await services().status.lookup(key, query);
    switch (found.kind) {
      case "found":
        return json(200, found.status);
      case "not-found":
        return json(404, { error: "not found", id: key.id });
      case "ambiguous":
        return json(400, {
          error: "invalid query",
          errors: [{ path: "tenantId", message: "is required: several tenants use this id" }],
        });
    }
  };

  const update: ApiHandler = async (request, context) => {
    const target = namedRequest(request);
    if (!target.ok) return target.response;
    const body = await jsonBody(request);
    if (!body.ok) return body.response;
    if (typeof body.value !== "object" || body.value === null || Array.isArray(body.value))
      return json(400, {
        error: "invalid request",
        errors: [{ path: "(body)", message: "must be a JSON object" }],
      });
    // The body is the queue operation's fields without its envelope: one schema for both doors.
    const parsed = parseNotificationUpdate({
      ...body.value,
      schemaVersion: 1,
      operation: "update",
      ...target.value,
    });
    if (!parsed.ok) return json(400, { error: "invalid request", errors: parsed.errors });
    const { message, summary, notBefore, correlationId } = parsed.value;
    const log = contextLogger(context).with({ requestId: target.value.id, correlationId });
    const result = await services().revisions.update(
      target.value,
      {
        ...(message !== undefined ? { message } : {}),
        ...(summary !== undefined ? { summary } : {}),
        ...(notBefore !== undefined ? { notBefore } : {}),
        correlationId,
      },
      log,
    );
    return changeResponse(request, result);
  };

  const recall: ApiHandler = async (request, context) => {
    const target = namedRequest(request);
    if (!target.ok) return target.response;
    const parsed = parseNotificationRecall({
      schemaVersion: 1,
      operation: "recall",
      ...target.value,
    });
    if (!parsed.ok) return json(400, { error: "invalid request", errors: parsed.errors });
    const log = contextLogger(context).with({ requestId: target.value.id });
    return changeResponse(request, await services().revisions.recall(target.value, {}, log));
  };

  const events: ApiHandler = async (request) => {
    const parsed = eventsRequest(request);
    if (!parsed.ok) return parsed.response;
    const { key, after, limit } = parsed.value;
    const found = await services().eventLog.read(key, {
      ...(after !== undefined ? { after } : {}),
      limit,
    });
    switch (found.kind) {
      case "found":
        return json(200, { id: key.id, tenantId: key.tenantId, ...found.page });
      case "not-found":
        return json(404, { error: "not found", id: key.id });
      case "bad-cursor":
        return json(400, {
          error: "invalid query",
          errors: [{ path: "after", message: "is not a cursor this endpoint handed out" }],
        });
    }
  };

  return { enqueue, status, update, recall, events };
}
