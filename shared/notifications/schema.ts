import { z } from "zod";

import { actionResponsesSchema } from "../model/action-responses";
import { messageSchema, type NotificationMessage, toActivity } from "../model/message";
import { guidSchema, isGuid, recipientSchema } from "../model/recipient";
import { UNSAFE_TEXT_CLASS, unsafeStrings, unsafeTextProblem } from "../model/safe-text";
import {
  checkJson,
  clip,
  type FieldError,
  type JsonLimits,
  showPath,
} from "../validation/json-guard";

export {
  ADAPTIVE_CARD_CONTENT_TYPE,
  MAX_ADAPTIVE_CARD_VERSION,
  type MessageActivity,
  messageSchema,
  type NotificationMessage,
  toActivity,
} from "../model/message";
export {
  isGuid,
  MAX_RECIPIENT_VALUE_LENGTH,
  type Recipient,
  type RecipientKind,
  recipientSchema,
} from "../model/recipient";
export type { FieldError } from "../validation/json-guard";

/**
 * The notification request: the body LOB apps put on the `notifications` queue or POST to
 * `/api/notifications`. Defined once here; `notification-request.schema.json` is generated
 * from it (`npm run schema:notifications`) and a test fails when the two drift apart.
 *
 * Unions are avoided on purpose: "exactly one of" is checked by hand so that every rejection
 * names the offending field instead of zod's generic "Invalid input" for a failed union.
 */

export const SCHEMA_VERSION = 1;

/** Explicit recipients per request (a `teamId` counts as one and expands to its roster). */
export const MAX_RECIPIENTS = 10_000;

/**
 * A bot message may be about 100 KB; above that Teams answers 413 MessageSizeTooBig, and
 * Microsoft advises staying at or below 80 KB ("Format your bot messages",
 * https://learn.microsoft.com/microsoftteams/platform/bots/how-to/format-your-bot-messages).
 * The serialised activity Herald would post (UTF-8 JSON) is measured against the advised 80 KB;
 * the remaining ~20 KB leave room for the envelope the connector adds (ids, service URL,
 * channel data). The 28 KB figure often quoted belongs to incoming webhooks, not bots.
 */
export const MAX_ACTIVITY_BYTES = 80_000;

/**
 * Structural limits checked before the schema walks the body (see validation/json-guard.ts):
 * a real card nests a dozen levels; 10,000 recipients are ~20,000 values.
 */
export const REQUEST_JSON_LIMITS: JsonLimits = { maxDepth: 64, maxNodes: 200_000 };

/** Field errors returned per request, and the longest path or message in one of them. */
export const MAX_FIELD_ERRORS = 50;
const MAX_ERROR_TEXT = 300;

export const MAX_SUMMARY_LENGTH = 1_000;

/** Strings of a card reported with refused characters (the first few say enough). */
const MAX_CARD_TEXT_ERRORS = 5;

/** Safe in a URL path segment, a Table key and a Service Bus message id (<= 128). */
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

const schemaVersionField = z.literal(SCHEMA_VERSION, { error: `must be ${SCHEMA_VERSION}` });
const idField = z
  .string()
  .regex(
    REQUEST_ID,
    "must be 1-128 characters of letters, digits and . _ : @ - (starting with a letter or digit)",
  );
const summaryField = z
  .string()
  .max(MAX_SUMMARY_LENGTH)
  .meta({ not: { pattern: UNSAFE_TEXT_CLASS } })
  .describe("The notification preview text. The same characters are refused as in `message.text`.");
const notBeforeField = z.iso.datetime({
  offset: true,
  error: "must be an ISO 8601 date-time with a time zone",
});
const correlationIdField = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces")
  .describe("The caller's correlation id, carried into every log line.");

/** What Teams shows people (text, preview, every string of a card) and the activity's size. */
function checkShown(
  value: { message?: NotificationMessage | undefined; summary?: string | undefined },
  ctx: z.RefinementCtx,
): void {
  // model/safe-text.ts says which characters are refused.
  const shown: [readonly (string | number)[], string | undefined][] = [
    [["message", "text"], value.message?.text],
    [["summary"], value.summary],
  ];
  for (const [path, text] of shown) {
    const problem = text === undefined ? undefined : unsafeTextProblem(text);
    if (problem !== undefined) ctx.addIssue({ code: "custom", path: [...path], message: problem });
  }
  if (value.message === undefined) return;
  let cardProblems = 0;
  for (const found of unsafeStrings(value.message.adaptiveCard)) {
    ctx.addIssue({
      code: "custom",
      path: ["message", "adaptiveCard", ...found.path],
      message: found.problem,
    });
    if (++cardProblems >= MAX_CARD_TEXT_ERRORS) break;
  }
  const problem = activitySizeProblem(value.message, value.summary);
  if (problem !== undefined) ctx.addIssue({ code: "custom", path: ["message"], message: problem });
}

/** Why a message (with its summary) is too large for Teams, or undefined. */
export function activitySizeProblem(
  message: NotificationMessage,
  summary: string | undefined,
): string | undefined {
  const bytes = activityBytes(message, summary);
  return bytes > MAX_ACTIVITY_BYTES
    ? `is ${bytes} bytes as a Teams activity; the limit is ${MAX_ACTIVITY_BYTES} (Teams rejects larger messages)`
    : undefined;
}

export const notificationRequestSchema = z
  .strictObject({
    schemaVersion: schemaVersionField,
    operation: z
      .literal("send", { error: 'must be "send", "update" or "recall"' })
      .optional()
      .describe("A new notification (the default when `operation` is left out)."),
    id: idField.describe("The caller's idempotency key; becomes the Service Bus message id."),
    tenantId: guidSchema.describe("The Microsoft 365 tenant of every recipient."),
    recipients: z
      .array(recipientSchema)
      .min(1, "must name at least one recipient")
      .max(MAX_RECIPIENTS, `must name at most ${MAX_RECIPIENTS} recipients`),
    message: messageSchema,
    actions: actionResponsesSchema.optional(),
    summary: summaryField.optional(),
    notBefore: notBeforeField
      .optional()
      .describe("Deliver no earlier than this time (scheduled enqueue)."),
    includeGuests: z
      .boolean()
      .optional()
      .describe("Also deliver to guest users of `groupId` recipients (default: members only)."),
    correlationId: correlationIdField.optional(),
  })
  .superRefine(checkShown)
  .describe("A proactive 1:1 Teams notification to one or more users.");

/**
 * A change of a request already accepted: its message, summary or (while nothing is sent yet)
 * `notBefore`, each optional, at least one. Sent copies are replaced in place.
 */
export const notificationUpdateSchema = z
  .strictObject({
    schemaVersion: schemaVersionField,
    operation: z.literal("update"),
    id: idField.describe("The id of the request to change."),
    tenantId: guidSchema.describe("The request's tenant."),
    message: messageSchema.optional(),
    summary: summaryField.optional(),
    notBefore: notBeforeField
      .optional()
      .describe("A new delivery time; only while the request is scheduled and nothing was sent."),
    correlationId: correlationIdField.optional(),
  })
  .superRefine((value, ctx) => {
    if (value.message === undefined && value.summary === undefined && value.notBefore === undefined)
      ctx.addIssue({
        code: "custom",
        path: [],
        message: "must change at least one of message, summary, notBefore",
      });
    checkShown(value, ctx);
  })
  .describe("Replace a request's message (sent copies are updated in place) or move its time.");

/** A recall of a request already accepted: sent copies deleted, the rest never sent. */
export const notificationRecallSchema = z
  .strictObject({
    schemaVersion: schemaVersionField,
    operation: z.literal("recall"),
    id: idField.describe("The id of the request to recall."),
    tenantId: guidSchema.describe("The request's tenant."),
    correlationId: correlationIdField.optional(),
  })
  .describe("Withdraw a request: sent copies are deleted, pending and scheduled ones cancelled.");

export type NotificationUpdate = z.infer<typeof notificationUpdateSchema>;
export type NotificationRecall = z.infer<typeof notificationRecallSchema>;

export type NotificationRequest = z.infer<typeof notificationRequestSchema>;

function activityBytes(message: NotificationMessage, summary?: string): number {
  return Buffer.byteLength(JSON.stringify(toActivity(message, summary)), "utf8");
}

export type ParseResult =
  | { ok: true; request: NotificationRequest }
  | {
      ok: false;
      errors: FieldError[];
      id?: string;
      /** The request's tenant when it is a GUID: the rejection is recorded under (tenant, id). */
      tenantId?: string;
      correlationId?: string;
    };

/** Validates a request; on failure every error names its field and the reason. */
export function parseNotificationRequest(input: unknown): ParseResult {
  const parsed = parseWith(notificationRequestSchema, input);
  return parsed.ok ? { ok: true, request: parsed.value } : parsed;
}

/** Which operation a message on the intake queue asks for (none: a send). */
export function operationOf(input: unknown): string | undefined {
  if (typeof input !== "object" || input === null) return undefined;
  const operation = (input as { operation?: unknown }).operation;
  return typeof operation === "string" ? operation : undefined;
}

export type OperationParse<T> = { ok: true; value: T } | Extract<ParseResult, { ok: false }>;

export function parseNotificationUpdate(input: unknown): OperationParse<NotificationUpdate> {
  return parseWith(notificationUpdateSchema, input);
}

export function parseNotificationRecall(input: unknown): OperationParse<NotificationRecall> {
  return parseWith(notificationRecallSchema, input);
}

function parseWith<T>(schema: z.ZodType<T>, input: unknown): OperationParse<T> {
  // Structure first (depth, size, well-formed strings): zod and JSON.stringify recurse.
  const structural = checkJson(input, REQUEST_JSON_LIMITS);
  const result = structural.length === 0 ? schema.safeParse(input) : undefined;
  if (result?.success === true) return { ok: true, value: result.data };
  const errors: FieldError[] = (
    result === undefined
      ? structural
      : result.error.issues.map((issue) => ({
          path: showPath(issue.path.map((p) => (typeof p === "number" ? p : String(p)))),
          message: issue.message,
        }))
  )
    .slice(0, MAX_FIELD_ERRORS)
    .map((e) => ({ path: clip(e.path, MAX_ERROR_TEXT), message: clip(e.message, MAX_ERROR_TEXT) }));
  // Keep the caller's id when it is usable, so the rejection is recorded where they will look.
  const raw = typeof input === "object" && input !== null ? (input as Record<string, unknown>) : {};
  const id = typeof raw.id === "string" && REQUEST_ID.test(raw.id) ? raw.id : undefined;
  const correlationId =
    typeof raw.correlationId === "string" && /^[\x21-\x7e]{1,128}$/.test(raw.correlationId)
      ? raw.correlationId
      : undefined;
  const tenantId =
    typeof raw.tenantId === "string" && isGuid(raw.tenantId) ? raw.tenantId : undefined;
  return {
    ok: false,
    errors,
    ...(id !== undefined ? { id } : {}),
    ...(tenantId !== undefined ? { tenantId } : {}),
    ...(correlationId !== undefined ? { correlationId } : {}),
  };
}

/**
 * The JSON Schema published in the repository, generated from the zod schemas above: a message
 * on the intake queue is a request (no `operation`, or `"send"`), an update or a recall.
 */
export function notificationRequestJsonSchema(): Record<string, unknown> {
  const schema = z
    .union([notificationRequestSchema, notificationUpdateSchema, notificationRecallSchema])
    .meta({
      $id: "https://herald.example/schemas/notification-request.schema.json",
      title: "Herald notification request",
    })
    .describe(
      "A message on Herald's intake queue (or an HTTP body): a proactive 1:1 Teams notification, or an update or recall of one.",
    );
  return z.toJSONSchema(schema, { io: "input", target: "draft-2020-12" });
}

export function isRequestId(value: string): boolean {
  return REQUEST_ID.test(value);
}
