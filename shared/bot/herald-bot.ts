import {
  type InvokeResponse,
  TeamsActivityHandler,
  type TeamsChannelAccount,
  type TurnContext,
} from "botbuilder";
import { z } from "zod";

import type { Logger } from "../logging";
import type { CardClick, ClickOutcome, ClickRefusal } from "../notifications/card-clicks";
import {
  readReceiptMessage,
  relayMessage,
  rosterSyncMessage,
  welcomeMessage,
  type WelcomeWork,
} from "../notifications/work-items";
import type { OutgoingMessage, QueuePort } from "../queue/queue-port";
import type { TeamStore } from "../store/teams";
import type { UpsertOutcome, UserReferenceStore } from "../store/user-references";
import type { ValidActivity } from "./activity-schema";
import {
  executeAnswer,
  executeClickOf,
  isSubmitInvoke,
  refusalAnswer,
  refusalText,
  submitClickOf,
} from "./card-answers";
import { describeFailure, singleAttemptConnectorOf } from "./connector";
import { relayWorkOf } from "./mention-relay";
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
  users: UserReferenceStore;
  teams: TeamStore;
  welcomer: Welcomer;
  /** The internal work queue: every call to Teams this turn asks for is a work item there. */
  queue: QueuePort;
  clock?: () => Date;
  /** Deadline of the one read the endpoint makes while answering (default 3 s). */
  detailsDeadlineMs?: number;
  /** Events are on (`NotificationEvents`): read receipts become work items. */
  readReceipts?: boolean;
  /** Takes clicks on the buttons of Herald's cards (notifications/card-clicks.ts). */
  cardClicks?: CardClicker;
}

/** The port the bot hands button clicks to. */
export interface CardClicker {
  take(click: CardClick, log: Logger): Promise<ClickOutcome>;
}

/** An `Action.Execute` click (Universal Actions). */
const ADAPTIVE_CARD_ACTION = "adaptiveCard/action";

/** What Teams sends in a read receipt's `value`; its message ids are numbers. */
const readReceiptSchema = z.object({ lastReadMessageId: z.string().regex(/^\d{1,20}$/) });

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
 * Herald's Teams bot: keeps user and team references, and queues what it was asked to do
 * (welcomes, roster syncs, @mention relays) as tenant work. It makes no call to Teams itself:
 * the endpoint records, enqueues and answers, and the tenant's session on the work queue paces
 * every call (shared/bot/bot-work.ts runs them). Every handler reads the validated activity
 * from the turn state (the endpoint put it there).
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

    // The user read their 1:1 chat up to a message: recorded by tenant work (read-receipts.ts).
    this.onTeamsReadReceiptEvent(async (_receipt, context, next) => {
      await this.readReceipt(context);
      await next();
    });

    this.onMessage(async (context, next) => {
      const { activity, logger } = turnOf(context);
      if (isObject(context.activity.value)) {
        // An Action.Submit click: answered by recording it, never by the help text.
        await this.cardClick(context, submitClickOf(context.activity.value, clickerOf(activity)));
      } else if (activity.scope === "personal") {
        // The user's first 1:1 contact if the install event was missed, or the recovery of a
        // welcome whose sender died after claiming it; else the help text.
        await this.queueReply(context);
      } else {
        if (activity.teamId !== undefined) await this.teamSeen(context, activity.teamId);
        const relay = relayWorkOf(activity);
        if (relay === "notMentioned") {
          logger.info("Channel message without an @mention of Herald: ignored");
        } else {
          await this.enqueue([relayMessage(relay)]);
          logger.info("Relay queued", { recipients: relay.targets.length });
        }
      }
      await next();
    });
  }

  /**
   * `Action.Execute` clicks are answered with the Universal Actions response; other invokes
   * (message extensions, task modules) are not part of Herald: answered 200, logged.
   */
  protected override async onInvokeActivity(context: TurnContext): Promise<InvokeResponse> {
    const { activity, logger } = turnOf(context);
    if (isSubmitInvoke(context.activity.name, context.activity.value)) {
      // An Action.Submit with `msteams: {type: "invoke"}`: an invoke without a name whose value
      // is the button's data and the inputs; taken like a Submit message, answered 200.
      await this.cardClick(context, submitClickOf(context.activity.value, clickerOf(activity)));
      return { status: 200 };
    }
    if (context.activity.name !== ADAPTIVE_CARD_ACTION) {
      logger.info("Invoke activity not handled by Herald: answered 200", {
        name: context.activity.name,
      });
      return { status: 200 };
    }
    const click = executeClickOf(context.activity.value, clickerOf(activity));
    if (click === undefined) {
      logger.warn("Card action refused: the invoke's value is not an Action.Execute");
      return refusalAnswer("no-reference");
    }
    return executeAnswer(await this.cardClick(context, click));
  }

  /** A click on a card's button: taken (recorded once) or refused, and logged either way. */
  private async cardClick(context: TurnContext, click: CardClick): Promise<ClickOutcome> {
    const { logger } = turnOf(context);
    const outcome: ClickOutcome =
      this.deps.cardClicks === undefined
        ? { kind: "refused", reason: "no-reference" }
        : await this.deps.cardClicks.take(click, logger);
    if (outcome.kind === "refused") {
      logger.warn("Card action refused", { actionType: click.type, reason: outcome.reason });
      if (click.type === "Action.Submit") await this.refusalNotice(context, outcome.reason);
    } else
      logger.info(outcome.first ? "Card action recorded" : "Card action already recorded", {
        actionType: click.type,
        requestId: outcome.reference.r,
      });
    return outcome;
  }

  /**
   * A refused `Action.Submit` has no invoke answer to carry the refusal: the user gets a short
   * reply in their 1:1 chat instead, sent by a work item like the help text (never inline), and
   * one per activity (Teams' redeliveries collapse at the broker).
   */
  private async refusalNotice(context: TurnContext, reason: ClickRefusal): Promise<void> {
    const { activity } = turnOf(context);
    if (activity.scope !== "personal" || !isUser(activity.from.id, activity)) return;
    await this.queueReply(context, refusalText(reason));
  }

  /** A reply to the user's personal activity (the help text, or `notice`), as a welcome item. */
  private async queueReply(context: TurnContext, notice?: string): Promise<void> {
    const { activity } = turnOf(context);
    await this.queueWelcome(
      context,
      {
        scope: "personal",
        tenantId: activity.tenantId,
        teamsUserId: activity.from.id,
        helpReply: true,
        ...(notice !== undefined ? { notice } : {}),
      },
      activity.id ?? undefined,
    );
  }

  private async readReceipt(context: TurnContext): Promise<void> {
    const { activity, logger } = turnOf(context);
    if (this.deps.readReceipts !== true) return;
    const value = readReceiptSchema.safeParse(context.activity.value);
    if (activity.scope !== "personal" || !isUser(activity.from.id, activity) || !value.success) {
      logger.warn("Read receipt ignored: not a user's 1:1 receipt with a numeric message id");
      return;
    }
    const now = (this.deps.clock ?? (() => new Date()))();
    const sentAt = Date.parse(String(context.activity.timestamp ?? ""));
    // Teams' time of the receipt, unless it is missing or ahead of this clock.
    const readAt = Number.isFinite(sentAt) && sentAt <= now.getTime() ? new Date(sentAt) : now;
    await this.enqueue([
      readReceiptMessage({
        tenantId: activity.tenantId,
        teamsUserId: activity.from.id,
        lastReadMessageId: value.data.lastReadMessageId,
        readAt: readAt.toISOString(),
      }),
    ]);
    logger.info("Read receipt queued");
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
    const { activity } = data;
    if (!isUser(activity.from.id, activity)) return;
    await this.learnDetails(context, data);
    if (!options.welcome) return;
    await this.queueWelcome(context, {
      scope: "personal",
      tenantId: activity.tenantId,
      teamsUserId: activity.from.id,
    });
  }

  /**
   * Queues a welcome (the work item also learns the user's UPN, which activities do not carry).
   * A welcome this process knows was sent needs no work item, unless a message asks for help.
   */
  private async queueWelcome(
    context: TurnContext,
    work: WelcomeWork,
    activityId?: string,
  ): Promise<void> {
    const helpReply = work.scope === "personal" && work.helpReply === true;
    if (!helpReply && this.deps.welcomer.knownToBeSent(work)) return;
    await this.enqueue([welcomeMessage(work, activityId)]);
    turnOf(context).logger.info(helpReply ? "Reply queued" : "Welcome queued", {
      welcome: work.scope,
    });
  }

  /**
   * Activities carry no UPN or e-mail; the member endpoint does, and a LOB app may notify the
   * user by UPN right after the install. The one read the endpoint makes while answering: one
   * attempt under a short deadline, skipped when the UPN is known. A failure only defers the
   * UPN to the welcome work item (which tries again) or the next roster sync.
   */
  private async learnDetails(context: TurnContext, data: TurnData): Promise<void> {
    const { activity, logger } = data;
    if (data.sender?.reference.userPrincipalName !== undefined) return;
    // Herald installed the app for them: the delivery knows them from Graph, and a burst of
    // such installs must not add an unpaced Teams call per user to the paced sends.
    if (
      await this.deps.welcomer.installedByHerald(
        activity.tenantId,
        activity.from.aadObjectId ?? undefined,
      )
    )
      return;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.deps.detailsDeadlineMs ?? 3_000);
    try {
      const client = await singleAttemptConnectorOf(context, logger);
      const member = (await client.conversations.getConversationMember(
        activity.conversation.id,
        activity.from.id,
        { abortSignal: controller.signal },
      )) as TeamsChannelAccount;
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
      logger.warn("Could not read the installing user's details; the welcome work tries again", {
        reason: describeFailure(error),
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    return this.deps.queue.enqueue(messages);
  }

  /**
   * Team install: record the team, queue the roster sync (a 10,000-member roster must not hold
   * this HTTP response) and the team's welcome in its General channel.
   */
  private async teamInstall(context: TurnContext, teamId: string): Promise<void> {
    const { activity, logger } = turnOf(context);
    await this.deps.teams.upsert({
      tenantId: activity.tenantId,
      teamId,
      name: teamName(activity),
      aadGroupId: activity.channelData?.team?.aadGroupId ?? undefined,
      serviceUrl: activity.serviceUrl,
    });
    const now = (this.deps.clock ?? (() => new Date()))();
    await this.enqueue([
      rosterSyncMessage({ tenantId: activity.tenantId, teamId }, now),
      welcomeMessage({ scope: "team", tenantId: activity.tenantId, teamId }),
    ]);
    logger.info("Team installed; roster sync and welcome queued", { teamId });
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
      await this.queueWelcome(context, { scope: "team", tenantId: activity.tenantId, teamId });
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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function clickerOf(
  activity: ValidActivity,
): Pick<CardClick, "tenantId" | "teamsUserId" | "aadObjectId"> {
  return {
    tenantId: activity.tenantId,
    teamsUserId: activity.from.id,
    aadObjectId: activity.from.aadObjectId ?? undefined,
  };
}

function teamName(activity: ValidActivity): string | undefined {
  return activity.channelData?.team?.name ?? undefined;
}

function isUninstall(activity: ValidActivity): boolean {
  if (activity.type === "installationUpdate") return activity.action?.startsWith("remove") ?? false;
  return (activity.membersRemoved ?? []).some((m) => m.id === activity.recipient.id);
}
