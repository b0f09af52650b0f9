import { TeamsInfo, type TurnContext } from "botbuilder";

import type { Logger } from "../logging";
import type { WelcomeWork } from "../notifications/work-items";
import type { TeamStore } from "../store/teams";
import type { UserReferenceStore } from "../store/user-references";
import type { WelcomeSubject } from "../store/welcome-ledger";
import { describeFailure } from "./connector";
import { inConversation, pacedSender, type ProactiveDeps } from "./proactive";
import { personalHelp } from "./welcome-messages";
import type { WelcomeCheckJob, WelcomeTarget } from "./welcome-target";
import type { WelcomeOutcome, Welcomer } from "./welcomes";

export interface WelcomeWorkDeps extends ProactiveDeps {
  readonly welcomer: Welcomer;
  readonly users: Pick<UserReferenceStore, "findByTeamsUserId" | "upsert">;
  readonly teams: Pick<TeamStore, "get">;
  readonly logger: Logger;
}

export type WelcomeCheckOutcome =
  | WelcomeOutcome
  /** The user uninstalled or blocked Herald, Herald left the team, or nothing is stored. */
  | "skipped"
  /** The claim is still live: checked again at its lease end. */
  | "rescheduled"
  /** Too many checks in a row without a welcome going out: logged as an error. */
  | "gaveUp";

/**
 * The welcome's target from Herald's stored references (service URL, 1:1 conversation, name),
 * or why there is none to send to now.
 */
async function resolveTarget(
  deps: WelcomeWorkDeps,
  subject: WelcomeSubject,
): Promise<{ target: WelcomeTarget } | { skip: string }> {
  if (subject.scope === "team") {
    const team = await deps.teams.get(subject.tenantId, subject.teamId);
    if (team === undefined) return { skip: "the team is not recorded" };
    if (team.status === "removed") return { skip: "Herald was removed from the team" };
    return { target: { ...subject, name: team.name, serviceUrl: team.serviceUrl } };
  }
  const user = await deps.users.findByTeamsUserId(subject.tenantId, subject.teamsUserId);
  if (user === undefined) return { skip: "the user is not recorded" };
  if (user.status === "uninstalled" || user.status === "unreachable")
    return { skip: `the user reference is ${user.status}` };
  if (user.conversationId === undefined) return { skip: "no 1:1 conversation is recorded" };
  return {
    target: {
      ...subject,
      aadObjectId: user.aadObjectId,
      name: user.name,
      conversationId: user.conversationId,
      serviceUrl: user.serviceUrl,
    },
  };
}

function conversationAt(target: WelcomeTarget) {
  return {
    tenantId: target.tenantId,
    serviceUrl: target.serviceUrl,
    conversationId: target.scope === "personal" ? target.conversationId : target.teamId,
    scope: target.scope === "personal" ? ("personal" as const) : ("channel" as const),
  };
}

/**
 * Runs a `welcome` work item, queued by the bot endpoint on an install or a message: a personal
 * install first learns the user's UPN and e-mail (activities carry neither), then the welcome
 * goes out once (the ledger's protocol); a personal message whose welcome was already sent gets
 * the help text instead.
 */
export async function runWelcome(
  deps: WelcomeWorkDeps,
  work: WelcomeWork,
): Promise<WelcomeCheckOutcome> {
  const logger = deps.logger.with({ welcome: work.scope });
  const resolved = await resolveTarget(deps, work);
  if ("skip" in resolved) {
    logger.info("Welcome not sent", { reason: resolved.skip });
    return "skipped";
  }
  const { target } = resolved;
  let outcome: WelcomeCheckOutcome = "inProgress";
  await inConversation(deps, conversationAt(target), async (context) => {
    // A user Herald installed the app for is known from Graph, and is not welcomed: no lookup.
    if (
      target.scope === "personal" &&
      !(await deps.welcomer.installedByHerald(target.tenantId, target.aadObjectId))
    )
      await learnDetails(deps, target, context, logger);
    const send = pacedSender(context, deps, target.tenantId, logger);
    // A refused click's notice goes alone: whoever clicked had Herald's card, so no welcome.
    const notice = work.scope === "personal" ? work.notice : undefined;
    outcome =
      notice === undefined ? await deps.welcomer.ensureWelcome(send, target, logger) : "skipped";
    if (work.scope === "personal" && work.helpReply === true && outcome !== "sent") {
      try {
        await send(target.scope === "personal" ? target.conversationId : target.teamId, {
          type: "message",
          ...(notice !== undefined ? { textFormat: "plain", text: notice } : personalHelp()),
        });
      } catch (error) {
        logger.warn("Help reply could not be delivered", { reason: describeFailure(error) });
      }
    }
  });
  return outcome;
}

/**
 * UPN and e-mail from the member endpoint, once per user (skipped when already known); a
 * failure only costs the UPN until the next roster sync.
 */
async function learnDetails(
  deps: WelcomeWorkDeps,
  target: Extract<WelcomeTarget, { scope: "personal" }>,
  context: TurnContext,
  logger: Logger,
): Promise<void> {
  const known = await deps.users.findByTeamsUserId(target.tenantId, target.teamsUserId);
  if (known?.userPrincipalName !== undefined) return;
  try {
    await deps.pace(target.tenantId);
    const member = await TeamsInfo.getMember(context, target.teamsUserId);
    await deps.users.upsert({
      tenantId: target.tenantId,
      teamsUserId: target.teamsUserId,
      aadObjectId: member.aadObjectId,
      name: member.name,
      userPrincipalName: member.userPrincipalName,
      email: member.email,
      serviceUrl: target.serviceUrl,
      learnedFrom: "personal",
    });
  } catch (error) {
    logger.warn("Could not read the installing user's details; UPN unknown for now", {
      reason: describeFailure(error),
    });
  }
}

/**
 * Runs a `welcome-check` work item: a welcome already sent is left alone; a claim whose lease
 * still runs is checked again when it ends; an expired or released claim is taken over (the
 * ledger's ETag protocol lets exactly one instance win) and the welcome is sent proactively.
 */
export async function runWelcomeCheck(
  deps: WelcomeWorkDeps,
  job: WelcomeCheckJob,
): Promise<WelcomeCheckOutcome> {
  const logger = deps.logger.with({ welcome: job.scope, welcomeCheck: job.round });
  const due = await deps.welcomer.checkDue(job, logger);
  if (due !== "due") return due;

  const resolved = await resolveTarget(deps, job);
  if ("skip" in resolved) {
    logger.info("Welcome check: not sending now; the next install will welcome", {
      reason: resolved.skip,
    });
    return "skipped";
  }
  const { target } = resolved;
  let outcome: WelcomeOutcome = "inProgress";
  await inConversation(deps, conversationAt(target), async (context) => {
    const send = pacedSender(context, deps, target.tenantId, logger);
    outcome = await deps.welcomer.sendFromCheck(job, target, send, logger);
  });
  return outcome;
}
