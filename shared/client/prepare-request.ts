import { randomUUID } from "node:crypto";

import type { z } from "zod";

import {
  type NotificationRequest,
  type notificationRequestSchema,
  parseNotificationRequest,
  SCHEMA_VERSION,
} from "../notifications/schema";
import type { RequestIssue } from "./client-errors";

/**
 * What a caller hands to the client: a notification request whose `id` and `schemaVersion`
 * may be left out (the client fills in a new UUID and the current version).
 */
export type NotificationRequestInput = Omit<
  z.input<typeof notificationRequestSchema>,
  "id" | "schemaVersion"
> & {
  id?: string;
  schemaVersion?: typeof SCHEMA_VERSION;
};

export type PreparedRequest =
  | { readonly ok: true; readonly request: NotificationRequest }
  | { readonly ok: false; readonly issues: RequestIssue[] };

/**
 * Fills in a missing id and schema version, then validates with the processor's own zod
 * schema (`parseNotificationRequest`), so what passes here is what the processor accepts.
 */
export function prepareRequest(
  input: unknown,
  newId: () => string = randomUUID,
  where: { index?: number; line?: number } = {},
): PreparedRequest {
  let candidate = input;
  if (typeof input === "object" && input !== null && !Array.isArray(input)) {
    const record = input as Record<string, unknown>;
    candidate = {
      ...record,
      ...(record.schemaVersion === undefined ? { schemaVersion: SCHEMA_VERSION } : {}),
      ...(record.id === undefined ? { id: newId() } : {}),
    };
  }
  const parsed = parseNotificationRequest(candidate);
  if (parsed.ok) return { ok: true, request: parsed.request };
  return { ok: false, issues: parsed.errors.map((e) => ({ ...where, ...e })) };
}
