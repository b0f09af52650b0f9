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

export const notificationRequestSchema = z
  .strictObject({
    schemaVersion: z.literal(SCHEMA_VERSION, { error: `must be ${SCHEMA_VERSION}` }),
    id: z
      .string()
      .regex(
        REQUEST_ID,
        "must be 1-128 characters of letters, digits and . _ : @ - (starting with a letter or digit)",
      )
      .describe("The caller's idempotency key; becomes the Service Bus message id."),
    tenantId: guidSchema.describe("The Microsoft 365 tenant of every recipient."),
    recipients: z
      .array(recipientSchema)
      .min(1, "must name at least one recipient")
      .max(MAX_RECIPIENTS, `must name at most ${MAX_RECIPIENTS} recipients`),
    message: messageSchema,
    actions: actionResponsesSchema.optional(),
    summary: z
      .string()
      .max(MAX_SUMMARY_LENGTH)
      .optional()
      .meta({ not: { pattern: UNSAFE_TEXT_CLASS } })
      .describe(
        "The notification preview text. The same characters are refused as in `message.text`.",
      ),
    notBefore: z.iso
      .datetime({ offset: true, error: "must be an ISO 8601 date-time with a time zone" })
      .optional()
      .describe("Deliver no earlier than this time (scheduled enqueue)."),
    includeGuests: z
      .boolean()
      .optional()
      .describe("Also deliver to guest users of `groupId` recipients (default: members only)."),
    correlationId: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces")
      .optional()
      .describe("The caller's correlation id, carried into every log line."),
  })
  .superRefine((value, ctx) => {
    // What Teams shows people: text, preview, and every string of a card (model/safe-text.ts).
    const shown: [readonly (string | number)[], string | undefined][] = [
      [["message", "text"], value.message.text],
      [["summary"], value.summary],
    ];
    for (const [path, text] of shown) {
      const problem = text === undefined ? undefined : unsafeTextProblem(text);
      if (problem !== undefined)
        ctx.addIssue({ code: "custom", path: [...path], message: problem });
    }
    let cardProblems = 0;
    for (const found of unsafeStrings(value.message.adaptiveCard)) {
      ctx.addIssue({
        code: "custom",
        path: ["message", "adaptiveCard", ...found.path],
        message: found.problem,
      });
      if (++cardProblems >= MAX_CARD_TEXT_ERRORS) break;
    }
    const bytes = activityBytes(value.message, value.summary);
    if (bytes > MAX_ACTIVITY_BYTES) {
      ctx.addIssue({
        code: "custom",
        path: ["message"],
        message: `is ${bytes} bytes as a Teams activity; the limit is ${MAX_ACTIVITY_BYTES} (Teams rejects larger messages)`,
      });
    }
  })
  .meta({
    $id: "https://herald.example/schemas/notification-request.schema.json",
    title: "Herald notification request",
  })
  .describe("A proactive 1:1 Teams notification to one or more users.");

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
  // Structure first (depth, size, well-formed strings): zod and JSON.stringify recurse.
  const structural = checkJson(input, REQUEST_JSON_LIMITS);
  const result = structural.length === 0 ? notificationRequestSchema.safeParse(input) : undefined;
  if (result?.success === true) return { ok: true, request: result.data };
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

/** The JSON Schema published in the repository, generated from the zod schema above. */
export function notificationRequestJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(notificationRequestSchema, { io: "input", target: "draft-2020-12" });
}

export function isRequestId(value: string): boolean {
  return REQUEST_ID.test(value);
}
