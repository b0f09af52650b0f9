import type { UserReference, UserReferenceStore } from "../store/user-references";
import type { DeliveryWork, QueueMessageInfo } from "./work-items";

/** The user-reference operations delivery needs (the bot endpoint's store implements them). */
export type UserDirectory = Pick<
  UserReferenceStore,
  | "findByAadObjectId"
  | "findByUserPrincipalName"
  | "findByTeamsUserId"
  | "setConversationId"
  | "markStatus"
>;

/**
 * The stored reference of the user a recipient names, by whichever id it names them. A
 * notification's first try may take an active user's route from the AAD index row (one read:
 * user-references.ts); a retry reads the reference itself, so a copy that lagged a change
 * costs at most that one try.
 */
export function resolveUser(
  users: UserDirectory,
  work: Pick<DeliveryWork, "tenantId" | "recipient" | "attempt">,
  info: Pick<QueueMessageInfo, "deliveryCount">,
): Promise<UserReference | undefined> {
  const { tenantId, recipient } = work;
  if (recipient.teamsUserId !== undefined)
    return users.findByTeamsUserId(tenantId, recipient.teamsUserId);
  if (recipient.aadObjectId !== undefined)
    return users.findByAadObjectId(tenantId, recipient.aadObjectId, {
      read: work.attempt === 1 && info.deliveryCount === 1 ? "index-copy" : "reference",
    });
  if (recipient.userPrincipalName !== undefined)
    return users.findByUserPrincipalName(tenantId, recipient.userPrincipalName);
  return Promise.resolve(undefined);
}
