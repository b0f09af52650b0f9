import { createHash } from "node:crypto";

import {
  type CloudAdapter,
  type InvokeResponse,
  TeamsActivityHandler,
  TeamsInfo,
  type TurnContext,
} from "botbuilder";

import type { Logger } from "../logging";
import { type QueuePort, WORK_KIND_PROPERTY } from "../queue/queue-port";
import type { TeamStore } from "../store/teams";
import type { UpsertOutcome, UserReferenceStore } from "../store/user-references";
import type { ValidActivity } from "./activity-schema";
import { describeFailure, replySafely, senderFor } from "./connector";
import type { MentionRelay } from "./mention-relay";
import { ROSTER_SYNC_KIND, type RosterSyncJob } from "./roster-sync";
import { personalHelp } from "./welcome-messages";
import type { Welcomer } from "./welcomes";

/** What the endpoint validated for this turn, handed to the bot through the turn state. */
export interface TurnData {
  activity: ValidActivity;
  logger: Logger;
  /** Set once the sender's reference was recorded this turn. */
  sender?: UpsertOutcome;
}

export const TURN_DATA = Symbol("herald.turn");

export interface HeraldBotDeps {
  adapter: CloudAdapter;
  botAppId: string;
  users: UserReferenceStore;
  teams: TeamStore;
  welcomer: Welcomer;
  relay: MentionRelay;
  queue: QueuePort;
}

function turnOf(context: TurnContext): TurnData {
  const data = context.turnState.get<TurnData | undefined>(TURN_DATA);
  if (data === undefined) throw new Error("HeraldBot ran without a validated activity");
  return data;
}

/**
 * A person, not a bot: Teams gives users `29:` ids and bots `28:` ones; emulators such as the
 * Agents Playground use ids of their own ("user-id-0"), so anything not a bot counts.
 */
function isUser(id: string, activity: ValidActivity): boolean {
  return id !== activity.recipient.id && !id.startsWith("28:");
}

/**
 * Herald's Teams bot: keeps user and team references, welcomes once, relays @mentions.
 * Every handler reads the validated activity from the turn state (the endpoint put it there).
 */
export class HeraldBot extends TeamsActivityHandler {
  constructor(private readonly deps: HeraldBotDeps) {
    super();

    // Every activity: the sender is a user Herald can reach (Teams sends install events once,
    // so any activity may be the only chance to learn someone).
    this.onTurn(async (context, next) => {
      await this.recordSender(context);
      await next();
    });

    this.onInstallationUpdateAdd(async (context, next) => {
      const { activity } = turnOf(context);
      if (activity.scope === "personal") {
        await this.personalInstall(context, { welcome: activity.action === "add" });
      } else if (activity.teamId !== undefined) {
        await this.teamInstall(context, activity.teamId);
      } else {
        turnOf(context).logger.info("Installed in a group chat: nothing to record");
      }
      await next();
    });

    this.onInstallationUpdateRemove(async (context, next) => {
      await this.removed(context);
      await next();
    });

    this.onMembersAdded(async (context, next) => {
      const { activity } = turnOf(context);
      const botAdded = (activity.membersAdded ?? []).some((m) => m.id === activity.recipient.id);
      if (botAdded && activity.scope === "personal") {
        await this.personalInstall(context, { welcome: true });
      } else if (botAdded && activity.teamId !== undefined) {
        await this.teamInstall(context, activity.teamId);
      }
      if (activity.teamId !== undefined) await this.teamMembersAdded(context, activity.teamId);
      await next();
    });

    this.onMembersRemoved(async (context, next) => {
      const { activity } = turnOf(context);
      const botRemoved = (activity.membersRemoved ?? []).some(
        (m) => m.id === activity.recipient.id,
      );
      if (botRemoved) await this.removed(context);
      else if (activity.teamId !== undefined)
        await this.teamMembersRemoved(context, activity.teamId);
      await next();
    });

    this.onMessage(async (context, next) => {
      const { activity, logger } = turnOf(context);
      if (activity.scope === "personal") {
        // The user's first 1:1 contact if the install event was missed, or the recovery of a
        // welcome whose sender died after claiming it.
        const welcome = await this.personalWelcome(context);
        if (welcome !== "sent") await replySafely(context, personalHelp(), logger);
      } else {
        if (activity.teamId !== undefined) await this.teamSeen(context, activity.teamId);
        await this.deps.relay.handle(context, activity, logger);
      }
      await next();
    });
  }

  /** Invokes (card actions, message extensions) are not part of Herald: answered, logged. */
  protected override onInvokeActivity(context: TurnContext): Promise<InvokeResponse> {
    turnOf(context).logger.info("Invoke activity not handled by Herald: answered 200", {
      name: context.activity.name,
    });
    return Promise.resolve({ status: 200 });
  }

  private async recordSender(context: TurnContext): Promise<void> {
    const data = turnOf(context);
    const { activity } = data;
    if (!isUser(activity.from.id, activity) || isUninstall(activity)) return;
    data.sender = await this.deps.users.upsert({
      tenantId: activity.tenantId,
      teamsUserId: activity.from.id,
      aadObjectId: activity.from.aadObjectId ?? undefined,
      name: activity.from.name ?? undefined,
      serviceUrl: activity.serviceUrl,
      conversationId: activity.scope === "personal" ? activity.conversation.id : undefined,
      learnedFrom:
        activity.scope === "personal"
          ? "personal"
          : activity.type === "message"
            ? "message"
            : "team",
    });
  }

  private async personalInstall(
    context: TurnContext,
    options: { welcome: boolean },
  ): Promise<void> {
    const data = turnOf(context);
    await this.learnDetails(context, data);
    if (options.welcome) await this.personalWelcome(context);
  }

  private personalWelcome(context: TurnContext): ReturnType<Welcomer["ensurePersonal"]> {
    const { activity, logger } = turnOf(context);
    return this.deps.welcomer.ensurePersonal(
      senderFor(context, logger),
      {
        tenantId: activity.tenantId,
        teamsUserId: activity.from.id,
        name: activity.from.name ?? undefined,
        conversationId: activity.conversation.id,
        serviceUrl: activity.serviceUrl,
      },
      logger,
    );
  }

  /**
   * Activities carry no UPN or email; the member endpoint does. One call at personal install,
   * skipped when already known; a failure only costs the UPN lookup until the roster sync.
   */
  private async learnDetails(context: TurnContext, data: TurnData): Promise<void> {
    const { activity, logger } = data;
    if (
      !isUser(activity.from.id, activity) ||
      data.sender?.reference.userPrincipalName !== undefined
    )
      return;
    try {
      const member = await TeamsInfo.getMember(context, activity.from.id);
      await this.deps.users.upsert({
        tenantId: activity.tenantId,
        teamsUserId: activity.from.id,
        aadObjectId: member.aadObjectId,
        name: member.name,
        userPrincipalName: member.userPrincipalName,
        email: member.email,
        serviceUrl: activity.serviceUrl,
        learnedFrom: "personal",
      });
    } catch (error) {
      logger.warn("Could not read the installing user's details; UPN unknown for now", {
        reason: describeFailure(error),
      });
    }
  }

  /**
   * Team install: record the team, queue the roster sync (a 10,000-member roster must not hold
   * this HTTP response), and welcome the team in its General channel once.
   */
  private async teamInstall(context: TurnContext, teamId: string): Promise<void> {
    const { activity, logger } = turnOf(context);
    const name = teamName(activity);
    await this.deps.teams.upsert({
      tenantId: activity.tenantId,
      teamId,
      name,
      aadGroupId: activity.channelData?.team?.aadGroupId ?? undefined,
      serviceUrl: activity.serviceUrl,
    });
    const job: RosterSyncJob = {
      tenantId: activity.tenantId,
      teamId,
      serviceUrl: activity.serviceUrl,
    };
    await this.deps.queue.enqueue([
      {
        body: job,
        // Stable per install activity: a retried delivery of it is a broker duplicate.
        messageId: `roster-sync-${createHash("sha256")
          .update(`${activity.tenantId}|${teamId}|${activity.id ?? ""}`)
          .digest("hex")
          .slice(0, 40)}`,
        applicationProperties: { [WORK_KIND_PROPERTY]: ROSTER_SYNC_KIND },
      },
    ]);
    logger.info("Team installed; roster sync queued", { teamId });
    await this.deps.welcomer.ensureTeam(
      senderFor(context, logger),
      { tenantId: activity.tenantId, teamId, name, serviceUrl: activity.serviceUrl },
      logger,
    );
  }

  /**
   * A message in a team: a team Herald has no record of had its install event missed (learn
   * it now); for a known team this is where a team welcome whose sender died is recovered.
   */
  private async teamSeen(context: TurnContext, teamId: string): Promise<void> {
    const { activity, logger } = turnOf(context);
    const team = await this.deps.teams.get(activity.tenantId, teamId);
    if (team === undefined) {
      logger.info("Message from a team Herald has no record of: recording it as installed");
      await this.teamInstall(context, teamId);
    } else if (team.status === "active") {
      await this.deps.welcomer.ensureTeam(
        senderFor(context, logger),
        {
          tenantId: activity.tenantId,
          teamId,
          name: teamName(activity) ?? team.name,
          serviceUrl: activity.serviceUrl,
        },
        logger,
      );
    }
  }

  private async teamMembersAdded(context: TurnContext, teamId: string): Promise<void> {
    const { activity } = turnOf(context);
    const people = (activity.membersAdded ?? []).filter((m) => isUser(m.id, activity));
    if (people.length === 0) return;
    await this.deps.users.upsertMany(
      people.map((m) => ({
        tenantId: activity.tenantId,
        teamsUserId: m.id,
        aadObjectId: m.aadObjectId ?? undefined,
        name: m.name ?? undefined,
        serviceUrl: activity.serviceUrl,
        learnedFrom: "team" as const,
      })),
    );
    await this.deps.teams.addMembers(
      activity.tenantId,
      teamId,
      people.map((m) => m.id),
    );
    turnOf(context).logger.info("Team members added", { count: people.length });
  }

  /**
   * Members who left a team: their membership is marked removed, and so is their reference
   * unless they have Herald in personal scope (then they stay reachable 1:1).
   */
  private async teamMembersRemoved(context: TurnContext, teamId: string): Promise<void> {
    const { activity, logger } = turnOf(context);
    const people = (activity.membersRemoved ?? []).filter((m) => isUser(m.id, activity));
    if (people.length === 0) return;
    await this.deps.teams.removeMembers(
      activity.tenantId,
      teamId,
      people.map((m) => m.id),
    );
    for (const person of people) {
      const reference = await this.deps.users.findByTeamsUserId(activity.tenantId, person.id);
      if (reference === undefined || reference.learnedFrom === "personal") continue;
      if (reference.status !== "active") continue;
      await this.deps.users.markStatus(
        activity.tenantId,
        person.id,
        "removed",
        `removed from team ${teamName(activity) ?? teamId}`,
      );
    }
    logger.info("Team members removed", { count: people.length });
  }

  /** Uninstall (personal) or Herald removed from a team: mark, keep the history. */
  private async removed(context: TurnContext): Promise<void> {
    const { activity, logger } = turnOf(context);
    if (activity.scope === "personal") {
      if (!isUser(activity.from.id, activity)) return;
      await this.deps.users.markStatus(
        activity.tenantId,
        activity.from.id,
        "uninstalled",
        "the user removed Herald from personal scope",
      );
      logger.info("Personal uninstall recorded");
    } else if (activity.teamId !== undefined) {
      await this.deps.teams.markStatus(
        activity.tenantId,
        activity.teamId,
        "removed",
        "Herald was removed from the team",
      );
      logger.info("Removed from a team", { teamId: activity.teamId });
    }
  }
}

function teamName(activity: ValidActivity): string | undefined {
  return activity.channelData?.team?.name ?? undefined;
}

function isUninstall(activity: ValidActivity): boolean {
  if (activity.type === "installationUpdate") return activity.action?.startsWith("remove") ?? false;
  return (activity.membersRemoved ?? []).some((m) => m.id === activity.recipient.id);
}
