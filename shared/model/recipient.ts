import { z } from "zod";

/**
 * A recipient of a notification and its identity within a request: the types and keys every
 * layer shares (the request schema, the delivery ledger, the status API). Nothing here does
 * I/O or knows about Herald's other modules.
 */

export const RECIPIENT_KINDS = [
  "aadObjectId",
  "userPrincipalName",
  "teamsUserId",
  "teamId",
  "groupId",
] as const;
export type RecipientKind = (typeof RECIPIENT_KINDS)[number];

/**
 * Longest recipient value: one encoded Table key part (255 characters, store/limits.ts
 * `MAX_ENCODED_KEY_LENGTH`, kept in step by a test) less the longest kind prefix
 * ("userPrincipalName:"), so a delivery row key (`encodeKey("<kind>:<value>")`) of a plain value
 * stays about one key part long; `encodeKey` hashes the tail of anything longer.
 */
export const MAX_RECIPIENT_VALUE_LENGTH = 255 - "userPrincipalName:".length;

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export const guidSchema = z.string().regex(GUID, "must be a GUID");

export function isGuid(value: string): boolean {
  return GUID.test(value);
}

export const recipientSchema = z
  .strictObject({
    aadObjectId: guidSchema.optional().describe("The user's Entra ID (AAD) object id."),
    userPrincipalName: z
      .string()
      .min(3)
      .max(MAX_RECIPIENT_VALUE_LENGTH)
      .regex(/^[^\s@]+@[^\s@]+$/, "must look like user@domain")
      .optional()
      .describe("The user's UPN (usually the sign-in address)."),
    teamsUserId: z
      .string()
      .max(MAX_RECIPIENT_VALUE_LENGTH)
      .regex(/^29:\S+$/, "must be a Teams user id starting with '29:'")
      .optional()
      .describe("The user's Teams id for this bot (`29:…`)."),
    teamId: z
      .string()
      .max(MAX_RECIPIENT_VALUE_LENGTH)
      .regex(/^19:\S+@thread\.(tacv2|skype)$/, "must be a team id like '19:…@thread.tacv2'")
      .optional()
      .describe("Every member of this team's roster (the team must have the bot installed)."),
    groupId: guidSchema
      .optional()
      .describe(
        "Every user in this Entra group, nested groups included (guests only with includeGuests).",
      ),
  })
  .superRefine((value, ctx) => {
    const present = RECIPIENT_KINDS.filter((k) => value[k] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message: `must have exactly one of ${RECIPIENT_KINDS.join(", ")} (found ${present.length === 0 ? "none" : present.join(", ")})`,
      });
    }
  })
  .meta({ minProperties: 1, maxProperties: 1 })
  .describe("One recipient: exactly one of the properties.");

export type Recipient = z.infer<typeof recipientSchema>;

/**
 * A recipient's identity within a request: `<kind>:<value>`, with the case-insensitive kinds
 * (AAD object id, UPN, group id) lower-cased so `A@x.com` and `a@x.com` are one delivery.
 */
export function recipientKey(recipient: Recipient): string {
  const { kind, value } = recipientParts(recipient);
  const foldsCase = kind === "aadObjectId" || kind === "userPrincipalName" || kind === "groupId";
  return `${kind}:${foldsCase ? value.toLowerCase() : value}`;
}

export function recipientParts(recipient: Recipient): { kind: RecipientKind; value: string } {
  if (recipient.aadObjectId !== undefined)
    return { kind: "aadObjectId", value: recipient.aadObjectId };
  if (recipient.userPrincipalName !== undefined)
    return { kind: "userPrincipalName", value: recipient.userPrincipalName };
  if (recipient.teamsUserId !== undefined)
    return { kind: "teamsUserId", value: recipient.teamsUserId };
  if (recipient.teamId !== undefined) return { kind: "teamId", value: recipient.teamId };
  if (recipient.groupId !== undefined) return { kind: "groupId", value: recipient.groupId };
  throw new Error("recipient has no identity"); // the schema rules this out
}

export function recipientFromParts(kind: RecipientKind, value: string): Recipient {
  return { [kind]: value };
}

export function isRecipientKind(value: string): value is RecipientKind {
  return (RECIPIENT_KINDS as readonly string[]).includes(value);
}

/** A recipient back from its `recipientKey` (a case-folded kind comes back lower-cased). */
export function recipientOfKey(key: string): Recipient | undefined {
  const at = key.indexOf(":");
  const kind = key.slice(0, at);
  if (at < 0 || !isRecipientKind(kind)) return undefined;
  return recipientFromParts(kind, key.slice(at + 1));
}

/**
 * A person named by one string, as a path names them: a Teams user id (`29:…`), a UPN (`…@…`)
 * or an AAD object id (a GUID); undefined when it is none of the three.
 */
export function recipientNamed(value: string): Recipient | undefined {
  const candidate = value.startsWith("29:")
    ? { teamsUserId: value }
    : value.includes("@")
      ? { userPrincipalName: value }
      : { aadObjectId: value };
  const parsed = recipientSchema.safeParse(candidate);
  return parsed.success ? parsed.data : undefined;
}

/**
 * True when no two people a request's recipients (distinct recipient keys) come to can be one
 * person: all name people by AAD object id, directly or through groups (a group's members join as
 * AAD ids), or all by Teams user id, directly or through teams (a roster joins as Teams ids). One
 * person has one AAD object id, and one Teams id for the bot. A UPN can pass from one person to
 * another (a rename), and the two families can name one person twice: those requests need the
 * per-user guard (store/delivery-ledger.ts). Decided on the request's own recipients, never on
 * an expansion, which may change between two runs of one dispatch.
 */
export function namesDistinctPeople(recipients: Iterable<Recipient>): boolean {
  let family: "aad" | "teams" | undefined;
  for (const recipient of recipients) {
    const own =
      recipient.aadObjectId !== undefined || recipient.groupId !== undefined
        ? "aad"
        : recipient.teamsUserId !== undefined || recipient.teamId !== undefined
          ? "teams"
          : undefined;
    if (own === undefined || (family !== undefined && own !== family)) return false;
    family = own;
  }
  return true;
}
