import { z } from "zod";

/**
 * The fields of an inbound activity Herald relies on, validated at the boundary. Everything
 * else is passed through to botbuilder untouched. Optional text fields accept `null`, which
 * Teams sends for some of them.
 */

const text = z.string().nullish();
const httpUrl = z
  .string()
  .trim()
  .refine((v) => /^https?:\/\/[^\s/]+/i.test(v), "must be an http(s) URL");

/**
 * Ids become Table Storage keys (1 KiB at most, and `encodeKey` may triple a character), so
 * an oversized one must be a 400 here, not a storage error (500) later. Teams' own ids are far
 * shorter: `29:…` about 90 characters, tenant and AAD object ids are GUIDs.
 */
const MAX_ID = 256;
const MAX_TENANT_ID = 64;
const identifier = (max: number) =>
  z.string().min(1, "must not be empty").max(max, `must be at most ${max} characters`);
const optionalIdentifier = (max: number) =>
  z.string().max(max, `must be at most ${max} characters`).nullish();

const account = z.object({
  id: identifier(MAX_ID),
  name: text,
  aadObjectId: optionalIdentifier(MAX_ID),
});

const mention = z.object({
  type: z.literal("mention"),
  text: text,
  mentioned: account,
});

const otherEntity = z.object({ type: z.string() });

/** What CloudAdapter needs before it authenticates (else it answers 500, not 400). */
export const envelopeSchema = z.object({
  type: z.string().min(1, "must not be empty"),
  channelId: z.string().min(1, "must not be empty"),
  serviceUrl: httpUrl,
});

export const activitySchema = z.object({
  type: z.string().min(1),
  id: text,
  channelId: z.string().min(1),
  serviceUrl: httpUrl,
  from: account,
  recipient: account,
  conversation: z.object({
    id: identifier(MAX_ID),
    conversationType: text,
    tenantId: optionalIdentifier(MAX_TENANT_ID),
    isGroup: z.boolean().nullish(),
    name: text,
  }),
  channelData: z
    .object({
      tenant: z.object({ id: identifier(MAX_TENANT_ID) }).nullish(),
      team: z.object({ id: identifier(MAX_ID), name: text, aadGroupId: text }).nullish(),
      eventType: text,
    })
    .nullish(),
  action: text,
  text: text,
  membersAdded: z.array(account).nullish(),
  membersRemoved: z.array(account).nullish(),
  entities: z.array(z.union([mention, otherEntity])).nullish(),
});

export type ParsedActivity = z.infer<typeof activitySchema>;

/** A validated activity plus the facts every handler needs, computed once. */
export interface ValidActivity extends ParsedActivity {
  tenantId: string;
  /** personal = the user's 1:1 chat with the bot. */
  scope: "personal" | "team" | "groupChat";
  /** The team, for activities in a team's channel. */
  teamId: string | undefined;
}

export interface BoundaryIssue {
  path: string;
  message: string;
}

export type BoundaryResult<T> = { ok: true; value: T } | { ok: false; issues: BoundaryIssue[] };

function issuesOf(error: z.ZodError): BoundaryIssue[] {
  return error.issues.map((i) => ({
    path: i.path.map(String).join(".") || "(body)",
    message: i.message,
  }));
}

export function parseEnvelope(body: unknown): BoundaryResult<z.infer<typeof envelopeSchema>> {
  const parsed = envelopeSchema.safeParse(body);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, issues: issuesOf(parsed.error) };
}

/** Validates the fields Herald reads; the tenant is required (Teams always sends it). */
export function parseActivity(body: unknown): BoundaryResult<ValidActivity> {
  const parsed = activitySchema.safeParse(body);
  if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error) };
  const a = parsed.data;
  const tenantId = a.channelData?.tenant?.id ?? a.conversation.tenantId ?? undefined;
  if (tenantId === undefined || tenantId.trim() === "") {
    return {
      ok: false,
      issues: [{ path: "channelData.tenant.id", message: "required (the Teams tenant)" }],
    };
  }
  const teamId = a.channelData?.team?.id;
  const conversationType = a.conversation.conversationType ?? undefined;
  // Teams always says; emulators may not, and then a non-group chat outside a team is a 1:1.
  const scope =
    teamId !== undefined || conversationType === "channel"
      ? "team"
      : conversationType === "personal" ||
          (conversationType === undefined && a.conversation.isGroup !== true)
        ? "personal"
        : "groupChat";
  return { ok: true, value: { ...a, tenantId: tenantId.trim().toLowerCase(), scope, teamId } };
}

/** Mentions in the activity, by the id of whoever is mentioned. */
export function mentionsOf(
  activity: ParsedActivity,
): { id: string; name: string | undefined; text: string | undefined }[] {
  const out: { id: string; name: string | undefined; text: string | undefined }[] = [];
  for (const entity of activity.entities ?? []) {
    if ("mentioned" in entity) {
      out.push({
        id: entity.mentioned.id,
        name: entity.mentioned.name ?? undefined,
        text: entity.text ?? undefined,
      });
    }
  }
  return out;
}
