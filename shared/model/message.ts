import { z } from "zod";

import { cardActionProblems, type CardReference, stampCard } from "./card-actions";
import { UNSAFE_TEXT_CLASS } from "./safe-text";

/**
 * What a notification says, and the Teams activity that carries it: shared by the request schema,
 * the request store and delivery. Nothing here does I/O.
 */

/** The highest Adaptive Card version Teams renders. */
export const MAX_ADAPTIVE_CARD_VERSION = "1.5";

export const ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive";

export const adaptiveCardSchema = z
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
  .describe(
    "An Adaptive Card (https://adaptivecards.io); Teams supports up to version 1.5. No string in it may contain control characters other than tab, CR and LF, or the bidirectional overrides and isolates U+202A-U+202E and U+2066-U+2069 (Herald checks every string in the card; this schema does not repeat that check for its nested values).",
  );

export const messageSchema = z
  .strictObject({
    text: z
      .string()
      .regex(/\S/, "must not be empty or only white space (Teams refuses such a message)")
      .optional()
      .meta({ not: { pattern: UNSAFE_TEXT_CLASS } })
      .describe(
        "The message text. No control characters other than tab, CR and LF, and no bidirectional overrides or isolates (U+202A-U+202E, U+2066-U+2069).",
      ),
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
    // Herald answers the card's buttons (model/card-actions.ts): what it cannot answer is refused.
    if (value.adaptiveCard !== undefined)
      for (const problem of cardActionProblems(value.adaptiveCard))
        ctx.addIssue({
          code: "custom",
          path: ["adaptiveCard", ...problem.path],
          message: problem.message,
        });
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

export type NotificationMessage = z.infer<typeof messageSchema>;

/** A Bot Framework message activity, as posted to `/v3/conversations/{id}/activities`. */
export type MessageActivity = {
  type: "message";
  text?: string;
  textFormat?: "markdown" | "plain";
  summary?: string;
  attachments?: { contentType: string; content: unknown }[];
};

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

/** The message with Herald's reference on each of its card's buttons (text is left as it is). */
export function messageWithReference(
  message: NotificationMessage,
  reference: CardReference,
): NotificationMessage {
  return message.adaptiveCard === undefined
    ? message
    : { ...message, adaptiveCard: stampCard(message.adaptiveCard, reference) };
}
