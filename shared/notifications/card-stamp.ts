import { type CardReference, newCardToken } from "../model/card-actions";
import { type MessageActivity, messageWithReference, toActivity } from "../model/message";
import type { Claim } from "../store/delivery-claim";
import type { Delivery } from "../store/delivery-ledger";
import type { RequestContent } from "./request-contents";

/**
 * The send's part of card actions: the claim before the send keeps the row's card token (or
 * makes one), and the activity sent carries it on each button (model/card-actions.ts).
 */

/** The claim, with the card token when the card has buttons: the row's own if it has one. */
export function withCardToken(
  claim: Claim,
  current: Delivery | undefined,
  options: { readonly buttons: boolean },
): Claim {
  // A copy sent before (a retried send that did reach Teams) keeps its buttons working.
  return options.buttons ? { ...claim, cardToken: current?.cardToken ?? newCardToken() } : claim;
}

/** The reference stamped on the buttons of the copy `row` sends. */
export function referenceOf(row: Delivery, revision: number): CardReference {
  return {
    t: row.tenantId.toLowerCase(),
    r: row.requestId,
    k: row.recipientKey,
    v: revision,
    s: row.cardToken ?? "",
  };
}

/** The activity that carries `content` to `row`'s recipient, its buttons stamped. */
export function sentActivity(
  content: Pick<RequestContent, "message" | "summary">,
  row: Delivery,
  options: { readonly buttons: boolean; readonly revision: number },
): MessageActivity {
  const message = options.buttons
    ? messageWithReference(content.message, referenceOf(row, options.revision))
    : content.message;
  return toActivity(message, content.summary);
}
