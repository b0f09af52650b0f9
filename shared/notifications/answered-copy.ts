import { type ActionResponse, DEFAULT_ACKNOWLEDGEMENT } from "../model/action-responses";
import { stampCard, withoutClickActions } from "../model/card-actions";
import { type MessageActivity, type NotificationMessage, toActivity } from "../model/message";
import type { OutgoingMessage } from "../queue/queue-port";
import type { Delivery } from "../store/delivery-ledger";
import { referenceOf, sentActivity } from "./card-stamp";
import { copyMessage } from "./change-work-items";
import { answeredSinceOverride } from "./copy-content";
import type { RequestContent } from "./request-contents";

/**
 * What a copy becomes once its recipient clicked one of its buttons, so the answer sticks on
 * every device and the buttons cannot be pressed twice (the invoke's answer card reaches only
 * the device that clicked:
 * https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/universal-actions-for-adaptive-cards/work-with-universal-actions-for-adaptive-cards):
 * - the verb's answer `card`, stamped like the notification's (its own buttons, if the LOB gave
 *   it any, are answered like the first card's);
 * - for a `text` answer or none: the copy's card with every Execute/Submit button taken out and
 *   the answer text added at the end.
 *
 * The row keeps the verb to show (`answer`, written with the click) and the verb shown
 * (`answerShown`, written after Teams took the PUT). A later update of the request keeps the
 * answer: the copy shows the new content answered the same way, never its buttons again. One
 * person's own update (copy-content.ts) wins over an answer recorded before it.
 */

/** The copy's answer is recorded but not yet in the chat. */
export function answerPending(row: Delivery): boolean {
  return row.answer !== undefined && row.answer !== row.answerShown;
}

/** The activity a sent copy shows: the content, answered when the recipient clicked. */
export function copyActivity(
  content: RequestContent,
  row: Delivery,
  options: { readonly buttons: boolean; readonly revision: number },
): MessageActivity {
  if (row.answer === undefined || !answeredSinceOverride(row, content))
    return sentActivity(content, row, options);
  const response = content.actions?.[row.answer];
  if (response?.card !== undefined)
    return toActivity(
      { adaptiveCard: stampCard(response.card, referenceOf(row, options.revision)) },
      content.summary,
    );
  return toActivity(answeredMessage(content.message, response), content.summary);
}

function answeredMessage(
  message: NotificationMessage,
  response: ActionResponse | undefined,
): NotificationMessage {
  const text = response?.text ?? DEFAULT_ACKNOWLEDGEMENT;
  const card = message.adaptiveCard;
  if (card === undefined) return { ...message, text: `${message.text ?? ""}\n\n${text}` };
  const stripped = withoutClickActions(card);
  const body = Array.isArray(stripped.body) ? stripped.body : [];
  return {
    adaptiveCard: {
      ...stripped,
      body: [...body, { type: "TextBlock", text, wrap: true, weight: "Bolder" }],
    },
  };
}

/**
 * The work item that replaces a clicked copy in the chat: a copy update in the tenant's session
 * (copy-changes.ts), its message id derived from (request, recipient, verb), so a click Teams
 * delivers three times queues one replacement.
 */
export function answerMessage(row: Delivery, correlationId: string | undefined): OutgoingMessage {
  return copyMessage({
    tenantId: row.tenantId,
    requestId: row.requestId,
    recipient: row.recipient,
    operation: "update",
    revision: row.revision ?? 1,
    attempt: 1,
    answer: row.answer,
    ...(correlationId !== undefined ? { correlationId } : {}),
  });
}
