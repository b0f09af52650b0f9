import { createHash } from "node:crypto";

import { z } from "zod";

import type { CloudEvent } from "../model/cloud-event";
import { guidSchema, recipientSchema } from "../model/recipient";
import { RECIPIENT_STATES } from "./recipient-view";

/**
 * The closed list of Herald's events: each type with the schema of its `data`. Adding a type is
 * one line here (and its data schema, when no existing one fits); `npm run schema:events` then
 * publishes its JSON Schema beside the request schema, and a test fails until it does.
 *
 * `data` carries what the status API shows (never the message content): the request's identity,
 * and for a delivery the recipient's state, activity id, error and attempts.
 */

const requestIdentity = {
  requestId: z
    .string()
    .min(1)
    .max(128)
    .describe("The request's id (the caller's idempotency key)."),
  tenantId: guidSchema.describe("The request's tenant, lower-cased."),
};

const fieldErrorSchema = z.object({ path: z.string(), message: z.string() });

const countsSchema = z
  .object({
    total: z.number().int().min(0),
    ...Object.fromEntries(RECIPIENT_STATES.map((s) => [s, z.number().int().min(0)])),
    read: z.number().int().min(0).describe("Recipients whose read receipt came (so far)."),
  })
  .describe("Recipients per state, as the status API counts them.");

export const acceptedDataSchema = z
  .object({
    ...requestIdentity,
    state: z.enum(["queued", "scheduled"]),
    notBefore: z.string().optional().describe("The scheduled delivery time, if any."),
    recipients: z
      .number()
      .int()
      .min(1)
      .describe("Recipients the request names (a team or group counts as one)."),
  })
  .describe("The request was stored and its delivery queued (or scheduled).");

export const rejectedDataSchema = z
  .object({ ...requestIdentity, errors: z.array(fieldErrorSchema).min(1) })
  .describe("A request on the queue was invalid; nothing of it is sent. Fix it and resend.");

export const completedDataSchema = z
  .object({
    ...requestIdentity,
    state: z
      .enum(["completed", "failed", "recalled"])
      .describe(
        "`completed`: every recipient is final (the counts say who was reached); `failed`: the request's own work was dead-lettered; `recalled`: it was recalled and every copy is deleted or cancelled.",
      ),
    counts: countsSchema,
  })
  .describe("The request is final: nothing more will be sent for it.");

export const deliveryDataSchema = z
  .object({
    ...requestIdentity,
    recipient: recipientSchema,
    state: z.enum(RECIPIENT_STATES),
    step: z.enum(["installing", "waiting-for-chat"]).optional(),
    attempts: z.number().int().min(0).describe("Calls to Teams made for this recipient."),
    lastError: z.string().optional(),
    activityId: z.string().optional().describe("The Teams message id (sent)."),
    revision: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("The request revision the person's copy shows (sent, updated, recalled)."),
    override: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe(
        "The sequence of the per-recipient update the copy shows (PATCH …/recipients/{recipient}); absent: the request's content.",
      ),
    teamsUserId: z.string().optional(),
    userPrincipalName: z
      .string()
      .optional()
      .describe("A group member's UPN, as Microsoft Graph lists it (the request named the group)."),
    displayName: z.string().optional().describe("A group member's display name, from Graph."),
    duplicateOf: recipientSchema.optional(),
    installedAt: z.string().optional(),
    completedAt: z.string().optional(),
    readAt: z.string().optional(),
  })
  .describe("One recipient's state, as the status API shows it.");

export const cardActionDataSchema = z
  .object({
    ...requestIdentity,
    recipient: recipientSchema,
    verb: z
      .string()
      .describe(
        "The Action.Execute verb, or for Action.Submit the `verb` in its data (else `submit`).",
      ),
    actionType: z.enum(["Action.Execute", "Action.Submit"]),
    inputs: z
      .record(z.string(), z.unknown())
      .describe("The action's `data` with the user's inputs, without Herald's reference."),
    teamsUserId: z.string().describe("Who clicked: the recipient's Teams user id."),
    aadObjectId: z.string().optional().describe("Who clicked: their Entra ID object id."),
    revision: z.number().int().min(1).describe("The request revision the clicked copy showed."),
    at: z.string().describe("When Herald received the click."),
  })
  .describe(
    "A recipient pressed a button of the card (once per recipient and verb, however often Teams redelivers the click).",
  );

export const EVENT_TYPES = {
  "herald.notification.accepted": acceptedDataSchema,
  "herald.notification.rejected": rejectedDataSchema,
  "herald.notification.completed": completedDataSchema,
  "herald.delivery.installed": deliveryDataSchema,
  "herald.delivery.sent": deliveryDataSchema,
  "herald.delivery.unreachable": deliveryDataSchema,
  "herald.delivery.failed": deliveryDataSchema,
  "herald.delivery.rejected": deliveryDataSchema,
  "herald.delivery.duplicate": deliveryDataSchema,
  "herald.delivery.updated": deliveryDataSchema,
  "herald.delivery.recalled": deliveryDataSchema,
  "herald.delivery.cancelled": deliveryDataSchema,
  "herald.delivery.read": deliveryDataSchema,
  "herald.card.action": cardActionDataSchema,
} as const satisfies Record<string, z.ZodType>;

export type EventType = keyof typeof EVENT_TYPES;
export type EventData<T extends EventType> = z.infer<(typeof EVENT_TYPES)[T]>;

export const EVENT_TYPE_NAMES = Object.keys(EVENT_TYPES) as EventType[];

/** A request's last event: nothing follows it but read receipts. */
export const TERMINAL_TYPES: ReadonlySet<string> = new Set<EventType>([
  "herald.notification.completed",
  "herald.notification.rejected",
]);

export function isEventType(type: string): type is EventType {
  return Object.hasOwn(EVENT_TYPES, type);
}

/** Where each type's data schema is published (its `$id`, and the events' `dataschema`). */
export function dataSchemaId(type: EventType): string {
  return `https://herald.example/schemas/events/${type}.schema.json`;
}

/** The JSON Schema of a type's `data`, generated from the zod schema above. */
export function eventDataJsonSchema(type: EventType): Record<string, unknown> {
  const schema = EVENT_TYPES[type].meta({ $id: dataSchemaId(type), title: `${type} data` });
  return z.toJSONSchema(schema, { io: "output", target: "draft-2020-12" });
}

export interface EventIdentity {
  readonly tenantId: string;
  readonly requestId: string;
  /** The recipient's key; undefined for the request's own events. */
  readonly recipientKey?: string | undefined;
  readonly type: EventType;
  /**
   * Which occurrence of the transition: 1 until a later change makes the same transition happen
   * again (a request's revisions; a rejection, per refused message).
   */
  readonly revision: string | number;
}

/**
 * An event's id: derived from what it reports, so the same transition always gets the same id
 * (a redelivery, a restart, a republish) and two transitions never share one.
 */
export function eventId(identity: EventIdentity): string {
  const digest = createHash("sha256")
    .update(
      [
        "herald-event",
        identity.tenantId.toLowerCase(),
        identity.requestId,
        identity.recipientKey ?? "",
        identity.type,
        String(identity.revision),
      ].join("\u0000"),
    )
    .digest("base64url");
  return `he-${digest.slice(0, 40)}`;
}

export interface EventFacts<T extends EventType> extends EventIdentity {
  readonly type: T;
  readonly data: EventData<T>;
  readonly at: Date;
  readonly correlationId?: string | undefined;
}

/** One event of the closed list, in structured CloudEvents JSON. */
export function cloudEvent<T extends EventType>(facts: EventFacts<T>): CloudEvent {
  const tenant = facts.tenantId.toLowerCase();
  return {
    specversion: "1.0",
    id: eventId(facts),
    source: `/tenants/${tenant}/notifications/${encodeURIComponent(facts.requestId)}`,
    type: facts.type,
    ...(facts.recipientKey !== undefined ? { subject: facts.recipientKey } : {}),
    time: facts.at.toISOString(),
    datacontenttype: "application/json",
    dataschema: dataSchemaId(facts.type),
    ...(facts.correlationId !== undefined ? { correlationid: facts.correlationId } : {}),
    data: facts.data,
  };
}
