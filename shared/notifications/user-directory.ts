import type { Recipient } from "../model/recipient";
import type { UserReference, UserReferenceStore } from "../store/user-references";

/** The user-reference operations delivery needs (the bot endpoint's store implements them). */
export type UserDirectory = Pick<
  UserReferenceStore,
  | "findByAadObjectId"
  | "findByUserPrincipalName"
  | "findByTeamsUserId"
  | "setConversationId"
  | "markStatus"
>;

/** The stored reference of the user a recipient names, by whichever id it names them. */
export function resolveUser(
  users: UserDirectory,
  tenantId: string,
  recipient: Recipient,
): Promise<UserReference | undefined> {
  if (recipient.teamsUserId !== undefined)
    return users.findByTeamsUserId(tenantId, recipient.teamsUserId);
  if (recipient.aadObjectId !== undefined)
    return users.findByAadObjectId(tenantId, recipient.aadObjectId);
  if (recipient.userPrincipalName !== undefined)
    return users.findByUserPrincipalName(tenantId, recipient.userPrincipalName);
  return Promise.resolve(undefined);
}
