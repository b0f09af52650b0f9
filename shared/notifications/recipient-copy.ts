import { type Recipient, recipientKey, recipientParts } from "../model/recipient";
import type { Delivery, DeliveryLedger } from "../store/delivery-ledger";
import type { RequestKey } from "../store/notification-requests";
import type { UserReferenceStore } from "../store/user-references";

/**
 * One person's delivery row in a request, found from how a caller names them in a path
 * (`/api/notifications/{id}/recipients/{recipient}`, model/recipient.ts `recipientNamed`).
 */

export interface RecipientCopyDependencies {
  readonly ledger: Pick<DeliveryLedger, "get" | "list">;
  readonly users: Pick<UserReferenceStore, "findByAadObjectId" | "findByUserPrincipalName">;
}

/**
 * The row that reaches `recipient`: the one the request named them by (one point read), else
 * the row whose recorded Teams id, AAD id or UPN is theirs (a member of a team or group, or a
 * person the request named another way; one query of the request's rows). A second name of a
 * person (`duplicate`) leads to the row that reaches them.
 */
export async function findRecipientCopy(
  deps: RecipientCopyDependencies,
  request: RequestKey,
  recipient: Recipient,
): Promise<Delivery | undefined> {
  const row =
    (await deps.ledger.get(request, recipientKey(recipient))) ??
    (await matchingRow(deps, request, recipient));
  if (row?.state !== "duplicate" || row.duplicateOf === undefined) return row;
  return (await deps.ledger.get(request, row.duplicateOf)) ?? row;
}

async function matchingRow(
  deps: RecipientCopyDependencies,
  request: RequestKey,
  recipient: Recipient,
): Promise<Delivery | undefined> {
  const { kind, value } = recipientParts(recipient);
  const wanted = value.toLowerCase();
  // Herald may know the person's Teams id from their user reference: rows record that one.
  const user =
    kind === "aadObjectId"
      ? await deps.users.findByAadObjectId(request.tenantId, value)
      : kind === "userPrincipalName"
        ? await deps.users.findByUserPrincipalName(request.tenantId, value)
        : undefined;
  const teamsUserId = kind === "teamsUserId" ? value : user?.teamsUserId;
  let duplicate: Delivery | undefined;
  for await (const row of deps.ledger.list(request)) {
    const matches =
      (teamsUserId !== undefined && row.teamsUserId === teamsUserId) ||
      (kind === "aadObjectId" && row.aadObjectId?.toLowerCase() === wanted) ||
      (kind === "userPrincipalName" && row.userPrincipalName?.toLowerCase() === wanted);
    if (!matches) continue;
    if (row.state !== "duplicate") return row;
    duplicate ??= row;
  }
  return duplicate;
}
