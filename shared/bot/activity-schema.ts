import { z } from "zod";

import { checkJson, clip, type JsonLimits, showPath } from "../validation/json-guard";

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
 * Ids become Table Storage keys. `encodeKey` keeps any id within the key limit (it hashes the
 * tail of a long one), so this bound is not about storage: it refuses ids no Teams tenant
 * sends (`29:…` ids are about 90 characters, tenant and AAD object ids are GUIDs) with a 400
 * that names the field.
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

/**
 * Structural limits checked before zod walks an activity (zod recurses per level, so a deeply
 * nested body would overflow the stack: a 500 instead of a 400). Teams' activities nest a
 * handful of levels; cards in attachments a dozen or two.
 */
export const ACTIVITY_JSON_LIMITS: JsonLimits = { maxDepth: 64, maxNodes: 100_000 };

/** Issues returned in a 400, and the longest path or message quoted in one. */
const MAX_ISSUES = 20;
const MAX_ISSUE_TEXT = 200;

export interface BoundaryIssue {
  path: string;
  message: string;
}

export type BoundaryResult<T> = { ok: true; value: T } | { ok: false; issues: BoundaryIssue[] };

/** Issues as answered and logged: few, and short (a 400 must not echo a hostile value whole). */
function bounded(issues: readonly BoundaryIssue[]): BoundaryIssue[] {
  return issues.slice(0, MAX_ISSUES).map((i) => ({
    path: clip(i.path, MAX_ISSUE_TEXT),
    message: clip(i.message, MAX_ISSUE_TEXT),
  }));
}

function issuesOf(error: z.ZodError): BoundaryIssue[] {
  return bounded(
    error.issues.map((i) => ({
      path: showPath(i.path.map((p) => (typeof p === "number" ? p : String(p)))),
      message: i.message,
    })),
  );
}

/**
 * The first check of an inbound body: bounded nesting and size, and well-formed Unicode in
 * every string and property name (a lone surrogate cannot be stored or encoded as UTF-8).
 * Runs before anything walks the body recursively, botbuilder included.
 */
export function parseEnvelope(body: unknown): BoundaryResult<z.infer<typeof envelopeSchema>> {
  const structural = checkJson(body, ACTIVITY_JSON_LIMITS);
  if (structural.length > 0) return { ok: false, issues: bounded(structural) };
  const parsed = envelopeSchema.safeParse(body);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, issues: issuesOf(parsed.error) };
}

/** Validates the fields Herald reads; the tenant is required (Teams always sends it). */
export function parseActivity(body: unknown): BoundaryResult<ValidActivity> {
  // Also here: callers may parse an activity that did not come through `parseEnvelope`.
  const structural = checkJson(body, ACTIVITY_JSON_LIMITS);
  if (structural.length > 0) return { ok: false, issues: bounded(structural) };
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
