import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";

import { DEFAULT_EVENT_PAGE, type EventLog, MAX_EVENT_PAGE } from "../events/event-log";
import { contextLogger } from "../logging";
import {
  json,
  jsonBody,
  namedRequest,
  type Parsed,
  refused,
  statusUrl,
  updateBody,
} from "./http-parts";
import type { NotificationIntake } from "./intake";
import { recipientUpdateHandler } from "./recipient-update-api";
import type { RecipientUpdates } from "./recipient-updates";
import type { ChangeResult, NotificationRevisions } from "./revisions";
import { isGuid, isRequestId, parseNotificationRecall } from "./schema";
import {
  type NotificationStatusReader,
  RECIPIENT_STATES,
  type RecipientState,
  type StatusQuery,
} from "./status";

/**
 * The notifications HTTP API behind `functions/notifications-api.ts`: `POST /api/notifications`
 * (validate and enqueue a request), `GET /api/notifications/{id}` (per-recipient states) and
 * `GET /api/notifications/{id}/events` (the request's events, paged), and the changes: `PATCH`
 * and `DELETE` of a request, `PATCH` of one person's copy (recipient-update-api.ts).
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
  /** `PATCH /api/notifications/{id}/recipients/{recipient}?tenantId=`: one person's copy. */
  readonly updateRecipient: ApiHandler;
}

/** What the handlers need of the notification services (tests give their own). */
export interface NotificationsApiServices {
  readonly intake: Pick<NotificationIntake, "submit">;
  readonly status: Pick<NotificationStatusReader, "lookup">;
  readonly revisions: Pick<NotificationRevisions, "update" | "recall">;
  readonly recipientUpdates: Pick<RecipientUpdates, "update">;
  readonly eventLog: Pick<EventLog, "read">;
}

const MAX_LIMIT = 10_000;

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
    const parsed = await updateBody(request, target.value);
    if (!parsed.ok) return parsed.response;
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

  const updateRecipient = recipientUpdateHandler(() => services().recipientUpdates);
  return { enqueue, status, update, recall, events, updateRecipient };
}
