import { createHash } from "node:crypto";

import type { CloudAdapter, ConversationReference } from "botbuilder";
import { z } from "zod";

import { ValidationError } from "../errors";
import type { Logger } from "../logging";
import { type OutgoingMessage, WORK_KIND_PROPERTY } from "../queue/queue-port";
import type { TeamStore } from "../store/teams";
import type { UserReferenceStore } from "../store/user-references";
import { welcomeKeys, type WelcomeSubject } from "../store/welcome-ledger";
import { senderFor } from "./connector";
import type { WelcomeOutcome, Welcomer } from "./welcomes";

/** Value of `WORK_KIND_PROPERTY` for welcome lease checks (WORK_KINDS.welcomeCheck). */
export const WELCOME_CHECK_KIND = "welcome-check";

const text = z.string().trim().min(1).max(1024);
const common = {
  tenantId: text,
  serviceUrl: z
    .string()
    .trim()
    .refine((v) => /^https?:\/\/[^\s/]+/i.test(v), "must be an http(s) URL"),
  /** The user's or the team's display name, for the welcome text. */
  name: z.string().max(256).optional(),
  /** Which check of this welcome's chain this is (1 = scheduled by the first claim). */
  round: z.number().int().min(1).max(100),
};

/**
 * The body of a `welcome-check` work item: everything needed to send the welcome with no
 * activity from the user (the team welcome goes to the General channel, whose id is the team's).
 */
export const welcomeCheckJobSchema = z.discriminatedUnion("scope", [
  z.object({
    scope: z.literal("personal"),
    teamsUserId: text,
    conversationId: text,
    ...common,
  }),
  z.object({ scope: z.literal("team"), teamId: text, ...common }),
]);

export type WelcomeCheckJob = z.infer<typeof welcomeCheckJobSchema>;

/** A welcome to send: a check job without its round. */
export type WelcomeTarget =
  | Omit<Extract<WelcomeCheckJob, { scope: "personal" }>, "round">
  | Omit<Extract<WelcomeCheckJob, { scope: "team" }>, "round">;

export function subjectOf(target: WelcomeTarget): WelcomeSubject {
  return target.scope === "personal"
    ? { scope: "personal", tenantId: target.tenantId, teamsUserId: target.teamsUserId }
    : { scope: "team", tenantId: target.tenantId, teamId: target.teamId };
}

/** Where the welcome is posted: the 1:1 chat, or the team's General channel. */
export function conversationOf(target: WelcomeTarget): string {
  return target.scope === "personal" ? target.conversationId : target.teamId;
}

/**
 * The queue message of a check. Its id is derived from the welcome, the claim it watches and
 * the round, so the instances that all saw the same claim schedule one check between them
 * (the queue's duplicate detection drops the copies).
 */
export function welcomeCheckMessage(job: WelcomeCheckJob, claimOwner: string): OutgoingMessage {
  const { partitionKey, rowKey } = welcomeKeys(subjectOf(job));
  const id = createHash("sha256")
    .update([partitionKey, rowKey, claimOwner, job.round].join("\u0000"))
    .digest("base64url")
    .slice(0, 32);
  // A display name longer than the schema allows must not make the check invalid.
  const body = job.name !== undefined ? { ...job, name: job.name.slice(0, 256) } : job;
  return {
    body,
    messageId: `wc-${id}`,
    applicationProperties: { [WORK_KIND_PROPERTY]: WELCOME_CHECK_KIND, round: job.round },
  };
}

export function parseWelcomeCheckJob(body: unknown): WelcomeCheckJob {
  const parsed = welcomeCheckJobSchema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({
    path: i.path.join(".") || "(body)",
    message: i.message,
  }));
  throw new ValidationError(
    `Invalid welcome-check job: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
    issues,
  );
}

export interface WelcomeCheckDeps {
  adapter: CloudAdapter;
  /** "" when anonymous (local); the bot's app id otherwise. */
  botAppId: string;
  welcomer: Welcomer;
  users: Pick<UserReferenceStore, "findByTeamsUserId">;
  teams: Pick<TeamStore, "get">;
  logger: Logger;
}

export type WelcomeCheckOutcome =
  | WelcomeOutcome
  /** The user uninstalled or blocked Herald, or Herald left the team: their next install welcomes. */
  | "skipped"
  /** The claim is still live: checked again at its lease end. */
  | "rescheduled"
  /** Too many checks in a row without a welcome going out: logged as an error. */
  | "gaveUp";

/**
 * Runs a `welcome-check` work item (the notifications queue trigger calls this): a welcome
 * already sent is left alone; a claim whose lease still runs is checked again when it ends;
 * an expired or released claim is taken over (the ledger's ETag protocol lets exactly one
 * instance win) and the welcome is sent proactively, with no activity from the user.
 * Throws ValidationError for a malformed body.
 */
export async function runWelcomeCheck(
  deps: WelcomeCheckDeps,
  body: unknown,
): Promise<WelcomeCheckOutcome> {
  const job = parseWelcomeCheckJob(body);
  const logger = deps.logger.with({ welcome: job.scope, welcomeCheck: job.round });
  const due = await deps.welcomer.checkDue(job, logger);
  if (due !== "due") return due;

  const skip = await skipReason(deps, job);
  if (skip !== undefined) {
    logger.info("Welcome check: not sending now; the next install will welcome", { reason: skip });
    return "skipped";
  }

  const reference: Partial<ConversationReference> = {
    channelId: "msteams",
    serviceUrl: job.serviceUrl,
    conversation: {
      id: conversationOf(job),
      isGroup: job.scope === "team",
      conversationType: job.scope === "team" ? "channel" : "personal",
      tenantId: job.tenantId,
      name: "",
    },
  };
  let outcome: WelcomeOutcome = "inProgress";
  await deps.adapter.continueConversationAsync(deps.botAppId, reference, async (context) => {
    outcome = await deps.welcomer.sendFromCheck(job, senderFor(context, logger), logger);
  });
  return outcome;
}

async function skipReason(
  deps: WelcomeCheckDeps,
  job: WelcomeCheckJob,
): Promise<string | undefined> {
  if (job.scope === "team") {
    const team = await deps.teams.get(job.tenantId, job.teamId);
    return team?.status === "removed" ? "Herald was removed from the team" : undefined;
  }
  const user = await deps.users.findByTeamsUserId(job.tenantId, job.teamsUserId);
  return user?.status === "uninstalled" || user?.status === "unreachable"
    ? `the user reference is ${user.status}`
    : undefined;
}
