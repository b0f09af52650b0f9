import type { Recipient } from "../notifications/schema";

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * What kind of recipient a `--to` value is: `29:…` a Teams user id, `19:…` a team (checked
 * before `@`, as team ids contain one), a GUID an Entra object id, `x@y` a UPN. Undefined
 * when it is none of them; the schema then checks the chosen kind's format.
 */
export function classifyRecipient(value: string): Recipient | undefined {
  const text = value.trim();
  if (text.startsWith("29:")) return { teamsUserId: text };
  if (text.startsWith("19:")) return { teamId: text };
  if (GUID.test(text)) return { aadObjectId: text };
  if (text.includes("@")) return { userPrincipalName: text };
  return undefined;
}
