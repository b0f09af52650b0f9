import type { HttpRequest, HttpResponseInit } from "@azure/functions";

import type { FieldError } from "../validation/json-guard";
import { isGuid, isRequestId, type NotificationUpdate, parseNotificationUpdate } from "./schema";

/**
 * The pieces every handler of the notifications HTTP API is made of (http-api.ts,
 * recipient-update-api.ts): answers, the body read within its limit, the request a path names,
 * and an update's body.
 */

/** Request bodies above this are refused before parsing (a 10,000-recipient request is ~0.6 MB). */
const MAX_BODY_BYTES = 2 * 1024 * 1024;

/** A request part parsed, or the answer that refuses it (the one parse shape of the API). */
export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly response: HttpResponseInit };

export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): HttpResponseInit {
  return { status, jsonBody: body, headers: { "content-type": "application/json", ...headers } };
}

export function refused(
  status: number,
  error: string,
  errors: readonly FieldError[],
): { ok: false; response: HttpResponseInit } {
  return { ok: false, response: json(status, { error, errors }) };
}

export function statusUrl(request: HttpRequest, id: string, tenantId: string): string {
  const url = new URL(`/api/notifications/${encodeURIComponent(id)}`, request.url);
  url.searchParams.set("tenantId", tenantId);
  return url.toString();
}

/** The body as JSON, within the size limit. */
export async function jsonBody(request: HttpRequest): Promise<Parsed<unknown>> {
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
 * One request, named by path and `tenantId` (required: `PATCH`, `DELETE` and the events name
 * exactly one request).
 */
export function namedRequest(request: HttpRequest): Parsed<{ id: string; tenantId: string }> {
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

/**
 * An update's body (`PATCH`): the queue operation's fields without its envelope, parsed with
 * that operation's schema, so both doors check the same.
 */
export async function updateBody(
  request: HttpRequest,
  target: { readonly id: string; readonly tenantId: string },
): Promise<Parsed<NotificationUpdate>> {
  const body = await jsonBody(request);
  if (!body.ok) return body;
  if (typeof body.value !== "object" || body.value === null || Array.isArray(body.value))
    return refused(400, "invalid request", [{ path: "(body)", message: "must be a JSON object" }]);
  const parsed = parseNotificationUpdate({
    ...body.value,
    schemaVersion: 1,
    operation: "update",
    ...target,
  });
  return parsed.ok
    ? { ok: true, value: parsed.value }
    : refused(400, "invalid request", parsed.errors);
}
