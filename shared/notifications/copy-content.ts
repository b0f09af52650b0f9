import type { Delivery } from "../store/delivery-ledger";
import type { RequestKey } from "../store/notification-requests";
import type { RecipientOverride, RecipientOverrideStore } from "../store/recipient-overrides";
import type { RequestContent } from "./request-contents";

/**
 * What one sent copy is to show: the request's content, or the person's own (a per-recipient
 * update, `PATCH /api/notifications/{id}/recipients/{recipient}`). The rules:
 * - an override holds until the request gets a later revision: an update of the whole request
 *   accepted after it supersedes it (the copy shows that revision, and the override is done);
 * - an override wins over a click's answer recorded before it (it is the LOB's later word): the
 *   copy shows it as the LOB gave it, its buttons stamped like any card Herald sends; a click on
 *   those buttons afterwards is answered as usual (answered-copy.ts).
 */

/** `content` with `override` applied when no later revision of the request supersedes it. */
export function withOverride(
  content: RequestContent,
  override: RecipientOverride | undefined,
): RequestContent {
  if (override === undefined || override.revision < content.revision) return content;
  return {
    ...content,
    message: override.message,
    summary: override.summary,
    override: override.sequence,
    overrideAt: override.acceptedAt,
  };
}

/**
 * The content for `row`'s copy. The override's row is read only when the copy may have one (the
 * work names one, or the row shows one), so an update of a whole request costs no extra read.
 */
export async function copyContent(
  overrides: Pick<RecipientOverrideStore, "get">,
  request: RequestKey,
  row: Pick<Delivery, "recipientKey" | "override">,
  content: RequestContent | undefined,
  workOverride: number | undefined,
): Promise<RequestContent | undefined> {
  if (content === undefined || (workOverride === undefined && row.override === undefined))
    return content;
  return withOverride(content, await overrides.get(request, row.recipientKey));
}

/** The copy's answer was recorded after the override it shows (so the copy shows it answered). */
export function answeredSinceOverride(
  row: Pick<Delivery, "answer" | "actions">,
  content: Pick<RequestContent, "overrideAt">,
): boolean {
  if (row.answer === undefined) return false;
  if (content.overrideAt === undefined) return true;
  const clicked = row.actions?.find((a) => a.verb === row.answer)?.at;
  return clicked !== undefined && clicked > content.overrideAt;
}
