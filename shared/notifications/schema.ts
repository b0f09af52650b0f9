import { z } from "zod";

import { MAX_ENCODED_KEY_LENGTH } from "../store/limits";
import { checkJson, clip, type JsonLimits, showPath } from "../validation/json-guard";

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

/** The highest Adaptive Card version Teams renders. */
export const MAX_ADAPTIVE_CARD_VERSION = "1.5";

/**
 * Longest recipient value. Its delivery row key is `encodeKey("<kind>:<value>")`; with the
 * longest kind prefix ("userPrincipalName:") an ASCII value of this length still fits one key
 * part unhashed, so keys stay readable. Longer non-ASCII values are hashed by `encodeKey`.
 */
export const MAX_RECIPIENT_VALUE_LENGTH = MAX_ENCODED_KEY_LENGTH - "userPrincipalName:".length;

/**
 * Structural limits checked before the schema walks the body (see validation/json-guard.ts):
 * a real card nests a dozen levels; 10,000 recipients are ~20,000 values.
 */
export const REQUEST_JSON_LIMITS: JsonLimits = { maxDepth: 64, maxNodes: 200_000 };

/** Field errors returned per request, and the longest path or message in one of them. */
export const MAX_FIELD_ERRORS = 50;
const MAX_ERROR_TEXT = 300;

export const MAX_SUMMARY_LENGTH = 1_000;

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Safe in a URL path segment, a Table key and a Service Bus message id (<= 128). */
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

const guid = z.string().regex(GUID, "must be a GUID");

const recipientKeys = [
  "aadObjectId",
  "userPrincipalName",
  "teamsUserId",
  "teamId",
  "groupId",
] as const;
export type RecipientKind = (typeof recipientKeys)[number];

export const recipientSchema = z
  .strictObject({
    aadObjectId: guid.optional().describe("The user's Entra ID (AAD) object id."),
    userPrincipalName: z
      .string()
      .min(3)
      .max(MAX_RECIPIENT_VALUE_LENGTH)
      .regex(/^[^\s@]+@[^\s@]+$/, "must look like user@domain")
      .optional()
      .describe("The user's UPN (usually the sign-in address)."),
    teamsUserId: z
      .string()
      .max(MAX_RECIPIENT_VALUE_LENGTH)
      .regex(/^29:\S+$/, "must be a Teams user id starting with '29:'")
      .optional()
      .describe("The user's Teams id for this bot (`29:…`)."),
    teamId: z
      .string()
      .max(MAX_RECIPIENT_VALUE_LENGTH)
      .regex(/^19:\S+@thread\.(tacv2|skype)$/, "must be a team id like '19:…@thread.tacv2'")
      .optional()
      .describe("Every member of this team's roster (the team must have the bot installed)."),
    groupId: guid
      .optional()
      .describe(
        "Every user in this Entra group, nested groups included (guests only with includeGuests).",
      ),
  })
  .superRefine((value, ctx) => {
    const present = recipientKeys.filter((k) => value[k] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message: `must have exactly one of ${recipientKeys.join(", ")} (found ${present.length === 0 ? "none" : present.join(", ")})`,
      });
    }
  })
  .meta({ minProperties: 1, maxProperties: 1 })
  .describe("One recipient: exactly one of the properties.");

const adaptiveCardSchema = z
  .looseObject({
    type: z.literal("AdaptiveCard", { error: 'must be "AdaptiveCard"' }),
    version: z
      .string()
      .regex(
        /^1\.[0-5]$/,
        `must be an Adaptive Card version Teams renders: 1.0 to ${MAX_ADAPTIVE_CARD_VERSION}`,
      ),
    body: z.array(z.looseObject({ type: z.string().min(1, "must name the element type") })),
  })
  .describe("An Adaptive Card (https://adaptivecards.io); Teams supports up to version 1.5.");

export const messageSchema = z
  .strictObject({
    text: z
      .string()
      .regex(/\S/, "must not be empty or only white space (Teams refuses such a message)")
      .optional()
      .describe("The message text."),
    format: z
      .enum(["markdown", "plain"])
      .optional()
      .describe("How Teams renders `text` (default markdown)."),
    adaptiveCard: adaptiveCardSchema.optional(),
  })
  .superRefine((value, ctx) => {
    const hasText = value.text !== undefined;
    const hasCard = value.adaptiveCard !== undefined;
    if (hasText === hasCard) {
      ctx.addIssue({ code: "custom", message: "must have exactly one of text, adaptiveCard" });
    }
    if (value.format !== undefined && !hasText) {
      ctx.addIssue({ code: "custom", path: ["format"], message: "only applies to text" });
    }
  })
  .meta({
    oneOf: [
      { required: ["text"], not: { required: ["adaptiveCard"] } },
      {
        required: ["adaptiveCard"],
        not: { anyOf: [{ required: ["text"] }, { required: ["format"] }] },
      },
    ],
  })
  .describe("Markdown or plain text, or an Adaptive Card.");

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
    tenantId: guid.describe("The Microsoft 365 tenant of every recipient."),
    recipients: z
      .array(recipientSchema)
      .min(1, "must name at least one recipient")
      .max(MAX_RECIPIENTS, `must name at most ${MAX_RECIPIENTS} recipients`),
    message: messageSchema,
    summary: z
      .string()
      .max(MAX_SUMMARY_LENGTH)
      .optional()
      .describe("The notification preview text."),
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
export type Recipient = z.infer<typeof recipientSchema>;
export type NotificationMessage = z.infer<typeof messageSchema>;

/** A Bot Framework message activity, as posted to `/v3/conversations/{id}/activities`. */
export interface MessageActivity {
  type: "message";
  text?: string;
  textFormat?: "markdown" | "plain";
  summary?: string;
  attachments?: { contentType: string; content: unknown }[];
}

export const ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive";

export function toActivity(message: NotificationMessage, summary?: string): MessageActivity {
  const activity: MessageActivity =
    message.adaptiveCard !== undefined
      ? {
          type: "message",
          attachments: [{ contentType: ADAPTIVE_CARD_CONTENT_TYPE, content: message.adaptiveCard }],
        }
      : { type: "message", text: message.text ?? "", textFormat: message.format ?? "markdown" };
  if (summary !== undefined) activity.summary = summary;
  return activity;
}

function activityBytes(message: NotificationMessage, summary?: string): number {
  return Buffer.byteLength(JSON.stringify(toActivity(message, summary)), "utf8");
}

export interface FieldError {
  /** Dotted path into the request, e.g. `recipients.3.aadObjectId`; `(body)` for the root. */
  readonly path: string;
  readonly message: string;
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
    typeof raw.tenantId === "string" && GUID.test(raw.tenantId) ? raw.tenantId : undefined;
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

export function isGuid(value: string): boolean {
  return GUID.test(value);
}

export function isRequestId(value: string): boolean {
  return REQUEST_ID.test(value);
}
