import type { Recipient, RecipientKind } from "./schema";

/**
 * A recipient's identity within a request: `<kind>:<value>`, with the case-insensitive kinds
 * (AAD object id, UPN) lower-cased so `A@x.com` and `a@x.com` are one delivery.
 */
export function recipientKey(recipient: Recipient): string {
  const { kind, value } = recipientParts(recipient);
  return `${kind}:${kind === "aadObjectId" || kind === "userPrincipalName" ? value.toLowerCase() : value}`;
}

export function recipientParts(recipient: Recipient): { kind: RecipientKind; value: string } {
  if (recipient.aadObjectId !== undefined)
    return { kind: "aadObjectId", value: recipient.aadObjectId };
  if (recipient.userPrincipalName !== undefined)
    return { kind: "userPrincipalName", value: recipient.userPrincipalName };
  if (recipient.teamsUserId !== undefined)
    return { kind: "teamsUserId", value: recipient.teamsUserId };
  if (recipient.teamId !== undefined) return { kind: "teamId", value: recipient.teamId };
  throw new Error("recipient has no identity"); // the schema rules this out
}

export function recipientFromParts(kind: RecipientKind, value: string): Recipient {
  return { [kind]: value };
}

/** Unique recipients in request order (the first spelling of a duplicate wins). */
export function uniqueRecipients(recipients: readonly Recipient[]): Map<string, Recipient> {
  const unique = new Map<string, Recipient>();
  for (const recipient of recipients) {
    const key = recipientKey(recipient);
    if (!unique.has(key)) unique.set(key, recipient);
  }
  return unique;
}
