import { randomUUID } from "node:crypto";

import {
  type NotificationRecall,
  type NotificationUpdate,
  parseNotificationRecall,
  parseNotificationUpdate,
} from "../notifications/schema";
import type { OutgoingMessage } from "../queue/queue-port";
import { RequestValidationError } from "./client-errors";

/** An update or recall of an accepted request, as the intake queue's schema has it. */
export type NotificationChange = NotificationUpdate | NotificationRecall;

/** What the caller passes: the envelope (`schemaVersion`, `operation`) is filled in. */
export type UpdateInput = Omit<NotificationUpdate, "schemaVersion" | "operation">;
export type RecallInput = Omit<NotificationRecall, "schemaVersion" | "operation">;

/**
 * How Herald took a change: `accepted` (HTTP: Herald answered, with the request's revision), or
 * `queued` (on the intake queue: Herald applies it when it takes it; see the status).
 */
export type ChangeAnswer =
  | { readonly kind: "accepted"; readonly revision: number; readonly recalled: boolean }
  | { readonly kind: "queued" };

/**
 * A change validated with the processor's own schema.
 * @throws RequestValidationError naming every bad field.
 */
export function validateChange(
  operation: "update" | "recall",
  input: UpdateInput | RecallInput,
): NotificationChange {
  const body = { ...input, schemaVersion: 1, operation };
  const parsed =
    operation === "update" ? parseNotificationUpdate(body) : parseNotificationRecall(body);
  if (!parsed.ok)
    throw new RequestValidationError(parsed.errors, `Invalid notification ${operation}`);
  return parsed.value;
}

/**
 * A change as a queue message. Each call is its own message (a new id): Herald keeps the id of
 * the last change it accepted, so the broker redelivering this message is no second revision.
 */
export function changeMessage(change: NotificationChange): OutgoingMessage {
  return {
    body: change,
    messageId: `${change.operation === "update" ? "u" : "x"}-${randomUUID()}`,
    ...(change.correlationId !== undefined ? { correlationId: change.correlationId } : {}),
  };
}
