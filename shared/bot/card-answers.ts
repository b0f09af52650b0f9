import type { InvokeResponse } from "botbuilder";
import { z } from "zod";

import { DEFAULT_ACKNOWLEDGEMENT } from "../model/action-responses";
import { stampCard } from "../model/card-actions";
import { ADAPTIVE_CARD_CONTENT_TYPE } from "../model/message";
import type { CardClick, ClickOutcome, ClickRefusal } from "../notifications/card-clicks";

/**
 * The Universal Actions answers to an `adaptiveCard/action` invoke: `{ statusCode, type, value }`
 * in the invoke response's body, a card (replaces the card for the user who clicked), a message
 * (a short text shown) or an error
 * (https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/universal-actions-for-adaptive-cards/work-with-universal-actions-for-adaptive-cards#invoke-response).
 */

export const MESSAGE_RESPONSE_TYPE = "application/vnd.microsoft.activity.message";
export const ERROR_RESPONSE_TYPE = "application/vnd.microsoft.error";

/** What the user reads on a click Herald does not take (no detail: it may be someone else's). */
const REFUSAL_TEXT: Record<ClickRefusal, string> = {
  "no-reference": "This button does not belong to a notification Herald can answer.",
  "bad-reference": "This button does not belong to a notification Herald can answer.",
  "other-tenant": "This button does not belong to a notification Herald can answer.",
  unknown: "This notification is no longer available.",
  forged: "This button does not belong to a notification Herald can answer.",
  "other-user": "This notification was sent to someone else.",
  "not-available": "This notification is no longer available.",
  "unknown-verb": "This action is not available on this notification.",
  "too-large": "This action could not be taken: its data is too large.",
};

/** `value` of an `adaptiveCard/action` invoke (inputs are merged into `action.data`). */
const executeValueSchema = z.object({
  action: z.object({
    type: z.literal("Action.Execute"),
    verb: z.string().max(1_000).optional(),
    data: z.unknown().optional(),
  }),
});

type ClickFrom = Pick<CardClick, "tenantId" | "teamsUserId" | "aadObjectId">;

/** The click an `adaptiveCard/action` invoke carries, or undefined when its value is malformed. */
export function executeClickOf(value: unknown, from: ClickFrom): CardClick | undefined {
  const parsed = executeValueSchema.safeParse(value);
  if (!parsed.success) return undefined;
  const { verb, data } = parsed.data.action;
  return { ...from, type: "Action.Execute", verb, data };
}

/** An invoke without a name carrying an object: an `Action.Submit` sent as an invoke. */
export function isSubmitInvoke(name: string | undefined, value: unknown): boolean {
  return (
    (name === undefined || name === "") &&
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value)
  );
}

/** The click a message with `value` carries (`Action.Submit`: the value is data plus inputs). */
export function submitClickOf(value: unknown, from: ClickFrom): CardClick {
  return { ...from, type: "Action.Submit", data: value };
}

function invokeAnswer(body: { statusCode: number; type: string; value: unknown }): InvokeResponse {
  return { status: body.statusCode, body };
}

export function refusalAnswer(reason: ClickRefusal): InvokeResponse {
  return invokeAnswer({
    statusCode: 400,
    type: ERROR_RESPONSE_TYPE,
    value: { code: "BadRequest", message: refusalText(reason) },
  });
}

/** The short text a refused click is answered with (an invoke's error, a Submit's reply). */
export function refusalText(reason: ClickRefusal): string {
  return REFUSAL_TEXT[reason];
}

/** The answer to a taken (or refused) `Action.Execute` click. */
export function executeAnswer(outcome: ClickOutcome): InvokeResponse {
  if (outcome.kind === "refused") return refusalAnswer(outcome.reason);
  const response = outcome.response;
  if (response?.card !== undefined)
    return invokeAnswer({
      statusCode: 200,
      type: ADAPTIVE_CARD_CONTENT_TYPE,
      // A response card's own buttons are answered like the notification's.
      value: stampCard(response.card, outcome.reference),
    });
  return invokeAnswer({
    statusCode: 200,
    type: MESSAGE_RESPONSE_TYPE,
    value: response?.text ?? DEFAULT_ACKNOWLEDGEMENT,
  });
}
