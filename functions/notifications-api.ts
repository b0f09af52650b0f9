import type {
  HttpHandler,
  HttpRequest,
  HttpResponseInit,
  InvocationContext,
} from "@azure/functions";

import { processServices } from "../shared/composition";
import { contextLogger } from "../shared/logging";
import { isGuid, isRequestId } from "../shared/notifications/schema";
import type { NotificationServices } from "../shared/notifications/services";
import { RECIPIENT_STATES, type RecipientState } from "../shared/notifications/status";
import { registerHttp } from "../shared/registry";

/** Request bodies above this are refused before parsing (a 10,000-recipient request is ~0.6 MB). */
const MAX_BODY_BYTES = 2 * 1024 * 1024;

function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): HttpResponseInit {
  return { status, jsonBody: body, headers: { "content-type": "application/json", ...headers } };
}

function statusUrl(request: HttpRequest, id: string, tenantId: string): string {
  const url = new URL(`/api/notifications/${encodeURIComponent(id)}`, request.url);
  url.searchParams.set("tenantId", tenantId);
  return url.toString();
}

/** Handlers over given services: tests build their own (Azurite, memory queue). */
export function createNotificationsApi(getServices: () => NotificationServices): {
  enqueue: HttpHandler;
  status: HttpHandler;
} {
  const enqueue: HttpHandler = async (request: HttpRequest, context: InvocationContext) => {
    const log = contextLogger(context);
    const text = await request.text();
    if (Buffer.byteLength(text, "utf8") > MAX_BODY_BYTES) {
      return json(413, {
        error: "request too large",
        errors: [{ path: "(body)", message: `must be at most ${MAX_BODY_BYTES} bytes` }],
      });
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return json(400, {
        error: "invalid request",
        errors: [{ path: "(body)", message: "must be a JSON object" }],
      });
    }
    const result = await getServices().intake.submit(body, log);
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
        return json(
          202,
          {
            id: result.id,
            state: result.scheduledFor !== undefined ? "scheduled" : "queued",
            ...(result.scheduledFor !== undefined ? { scheduledFor: result.scheduledFor } : {}),
            statusUrl: url,
          },
          { location: url },
        );
      }
    }
  };

  const status: HttpHandler = async (request: HttpRequest) => {
    const id = request.params.id ?? "";
    if (!isRequestId(id)) {
      return json(400, {
        error: "invalid id",
        errors: [{ path: "id", message: "is not a valid request id" }],
      });
    }
    const stateParam = request.query.get("state");
    if (stateParam !== null && !RECIPIENT_STATES.includes(stateParam as RecipientState)) {
      return json(400, {
        error: "invalid query",
        errors: [{ path: "state", message: `must be one of ${RECIPIENT_STATES.join(", ")}` }],
      });
    }
    const limitParam = request.query.get("limit");
    const limit = limitParam === null ? undefined : Number(limitParam);
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0 && limit <= 10_000)) {
      return json(400, {
        error: "invalid query",
        errors: [{ path: "limit", message: "must be an integer from 0 to 10000" }],
      });
    }
    const tenantId = request.query.get("tenantId") ?? undefined;
    if (tenantId !== undefined && !isGuid(tenantId)) {
      return json(400, {
        error: "invalid query",
        errors: [{ path: "tenantId", message: "must be a GUID" }],
      });
    }
    const found = await getServices().status.lookup(
      { tenantId, id },
      {
        ...(stateParam !== null ? { state: stateParam as RecipientState } : {}),
        ...(limit !== undefined ? { limit } : {}),
      },
    );
    switch (found.kind) {
      case "found":
        return json(200, found.status);
      case "not-found":
        return json(404, { error: "not found", id });
      case "ambiguous":
        return json(400, {
          error: "invalid query",
          errors: [{ path: "tenantId", message: "is required: several tenants use this id" }],
        });
    }
  };

  return { enqueue, status };
}

const api = createNotificationsApi(() => processServices().notifications);

/** `POST /api/notifications`: validate and enqueue a notification request. */
export const enqueueNotification: HttpHandler = api.enqueue;
/** `GET /api/notifications/{id}`: per-recipient states with counts. */
export const notificationStatus: HttpHandler = api.status;

registerHttp("notifications-enqueue", {
  methods: ["POST"],
  authLevel: "function",
  route: "notifications",
  handler: enqueueNotification,
});

registerHttp("notifications-status", {
  methods: ["GET"],
  authLevel: "function",
  route: "notifications/{id}",
  handler: notificationStatus,
});
