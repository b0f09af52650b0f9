import { z } from "zod";

import { MAX_VERB_LENGTH } from "./card-actions";
import { adaptiveCardSchema } from "./message";
import { UNSAFE_TEXT_CLASS, unsafeStrings } from "./safe-text";

/**
 * What the user sees at once when they press a button: per `Action.Execute` verb, a card that
 * replaces the notification or a short text (the Universal Actions answer,
 * https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/universal-actions-for-adaptive-cards/work-with-universal-actions-for-adaptive-cards).
 * Kept with the request, so the answer needs nothing but two Table reads.
 */

/** Herald's answer to a verb the request gave no response for. */
export const DEFAULT_ACKNOWLEDGEMENT = "Thanks, your response was recorded.";

/** Verbs a request may answer. */
export const MAX_ACTION_RESPONSES = 20;

/** All responses of a request together, as UTF-8 JSON (the advised size of one Teams message). */
export const MAX_ACTION_RESPONSES_BYTES = 80_000;

export const MAX_RESPONSE_TEXT_LENGTH = 2_000;

const VERB = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

export const actionResponseSchema = z
  .strictObject({
    card: adaptiveCardSchema.optional(),
    text: z
      .string()
      .regex(/\S/, "must not be empty or only white space")
      .max(MAX_RESPONSE_TEXT_LENGTH)
      .meta({ not: { pattern: UNSAFE_TEXT_CLASS } })
      .optional()
      .describe("A short text Teams shows the user who pressed the button."),
  })
  .superRefine((value, ctx) => {
    if ((value.card === undefined) === (value.text === undefined))
      ctx.addIssue({ code: "custom", message: "must have exactly one of card, text" });
  })
  .meta({ oneOf: [{ required: ["card"] }, { required: ["text"] }] })
  .describe(
    "The answer to one verb: a card that replaces the notification (for the person who clicked, and then in the chat) or a text.",
  );

export type ActionResponse = z.infer<typeof actionResponseSchema>;

export const actionResponsesSchema = z
  .record(
    z
      .string()
      .max(MAX_VERB_LENGTH, `must be at most ${MAX_VERB_LENGTH} characters`)
      .regex(
        VERB,
        "must be a verb of letters, digits and . _ : - (starting with a letter or digit)",
      ),
    actionResponseSchema,
  )
  .superRefine((value, ctx) => {
    const verbs = Object.keys(value);
    if (verbs.length === 0)
      ctx.addIssue({ code: "custom", message: "must answer at least one verb (or be left out)" });
    if (verbs.length > MAX_ACTION_RESPONSES)
      ctx.addIssue({
        code: "custom",
        message: `must answer at most ${MAX_ACTION_RESPONSES} verbs`,
      });
    for (const found of unsafeStrings(value)) {
      ctx.addIssue({ code: "custom", path: [...found.path], message: found.problem });
      break;
    }
    const bytes = Buffer.byteLength(JSON.stringify(value), "utf8");
    if (bytes > MAX_ACTION_RESPONSES_BYTES)
      ctx.addIssue({
        code: "custom",
        message: `are ${bytes} bytes together; the limit is ${MAX_ACTION_RESPONSES_BYTES}`,
      });
  })
  .describe(
    "Optional. The answer per Action.Execute verb of the card (and of Action.Submit buttons whose data has a `verb`). When given, a click with a verb not listed is refused; a verb without an entry (or no `actions` at all) gets Herald's acknowledgement.",
  );

export type ActionResponses = z.infer<typeof actionResponsesSchema>;
