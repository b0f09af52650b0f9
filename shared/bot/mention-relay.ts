import { type Activity, TeamsInfo, type TurnContext } from "botbuilder";

import { statusCodeOf } from "../errors";
import type { Logger } from "../logging";
import { relayMessage, type RelayWork } from "../notifications/work-items";
import type { QueuePort } from "../queue/queue-port";
import type {
  RelayClaim,
  RelayClaimOutcome,
  RelayLedger,
  RelayRecord,
  RelayTarget,
} from "../store/relay-ledger";
import type { TeamStore } from "../store/teams";
import type { UserReference, UserReferenceStore } from "../store/user-references";
import { mapLimited } from "../util/collections";
import { mentionsOf, type ValidActivity } from "./activity-schema";
import {
  createPersonalConversation,
  describeFailure,
  singleAttemptConnectorOf,
  teamsErrorCode,
} from "./connector";
import { inConversation, pacedSender, type ProactiveDeps } from "./proactive";

export interface MentionRelayDeps extends ProactiveDeps {
  readonly users: UserReferenceStore;
  readonly teams: Pick<TeamStore, "get">;
  /** Each (activity, target) and the reply at most once, across redeliveries and processes. */
  readonly ledger: Pick<RelayLedger, "claim" | "settle">;
  /** Where a relay waiting for another invocation's live claim is scheduled again. */
  readonly queue: QueuePort;
}

type Delivery =
  | { kind: "sent"; name: string; activityId?: string | undefined }
  | { kind: "unknown"; name: string }
  | { kind: "failed"; name: string; reason: string };

/** Another invocation holds a live claim on this target: the whole relay runs again later. */
type Guarded = Delivery | { kind: "busy"; leaseUntil: Date };

/** The reason a settled row records for a mentioned user Herald could not resolve. */
const UNKNOWN_REASON = "unknown";

/** Mentioned users relayed to in parallel; mentions are few and each is its own conversation. */
const RELAY_CONCURRENCY = 4;

const USAGE =
  "To pass a message on, @mention me and one or more colleagues, followed by the message: for example **@Herald @Alex the build is green**.";

/**
 * What a channel message asks of the relay, decided in the bot's turn with no call to Teams:
 * nothing (Herald was not mentioned), the usage hint, or the relay itself, as a work item.
 */
export function relayWorkOf(activity: ValidActivity): RelayWork | "notMentioned" {
  const mentions = mentionsOf(activity);
  const botId = activity.recipient.id;
  if (!mentions.some((m) => m.id === botId)) return "notMentioned";
  const targets = [
    ...new Map(
      mentions.filter((m) => m.id !== botId && m.id !== "").map((m) => [m.id, m]),
    ).values(),
  ].slice(0, 50);
  const text = stripMentions(activity.text ?? "", mentions).slice(0, 28_000);
  const teamName = activity.channelData?.team?.name ?? undefined;
  return {
    tenantId: activity.tenantId,
    conversationId: activity.conversation.id,
    activityId: activity.id ?? "",
    ...(activity.teamId !== undefined ? { teamId: activity.teamId } : {}),
    ...(teamName !== undefined ? { teamName: teamName.slice(0, 256) } : {}),
    fromTeamsUserId: activity.from.id,
    botId,
    ...(activity.from.name ? { fromName: activity.from.name.slice(0, 256) } : {}),
    text,
    targets: targets.map((t) => ({
      id: t.id,
      ...(t.name !== undefined ? { name: t.name.slice(0, 256) } : {}),
    })),
  };
}

/**
 * The seed's scenario: "@Herald @Ada @Grace the build is green" in a channel makes Herald
 * send "the build is green" (saying who asked) to Ada and Grace in their 1:1 chats, then
 * reply in the thread with what it did. Runs as tenant work (paced with the tenant's other
 * calls), on the service URL of the stored team, or of the asker outside a known team.
 */
export class MentionRelay {
  constructor(private readonly deps: MentionRelayDeps) {}

  async run(work: RelayWork, logger: Logger): Promise<void> {
    const serviceUrl = await this.serviceUrlOf(work);
    if (serviceUrl === undefined) {
      logger.warn("Relay dropped: neither the team nor the asker is recorded");
      return;
    }
    const at = {
      tenantId: work.tenantId,
      serviceUrl,
      conversationId: work.conversationId,
      scope: work.teamId !== undefined ? ("channel" as const) : ("groupChat" as const),
    };
    await inConversation(this.deps, at, async (context) => {
      if (work.targets.length === 0 || work.text === "") {
        await this.reply(context, work, USAGE, logger);
        logger.info("Relay request without recipients or text: answered with usage", {
          recipients: work.targets.length,
        });
        return;
      }
      const asker = work.fromName ?? "A colleague";
      const relayed = `**${asker}** asked me to pass this on${work.teamName ? ` from ${work.teamName}` : ""}:\n\n${work.text}`;
      const guarded = await mapLimited(work.targets, RELAY_CONCURRENCY, (target) =>
        this.deliverOnce(context, work, target, relayed, logger),
      );
      const deliveries = guarded.filter((d): d is Delivery => d.kind !== "busy");
      if (deliveries.length < guarded.length) {
        await this.deferUntil(work, guarded, logger);
        return;
      }
      await this.reply(context, work, summarise(deliveries), logger);
      logger.info("Relayed a channel message", {
        sent: deliveries.filter((d) => d.kind === "sent").length,
        unknown: deliveries.filter((d) => d.kind === "unknown").length,
        failed: deliveries.filter((d) => d.kind === "failed").length,
      });
    });
  }

  private async serviceUrlOf(work: RelayWork): Promise<string | undefined> {
    if (work.teamId !== undefined) {
      const team = await this.deps.teams.get(work.tenantId, work.teamId);
      if (team !== undefined) return team.serviceUrl;
    }
    return (await this.deps.users.findByTeamsUserId(work.tenantId, work.fromTeamsUserId))
      ?.serviceUrl;
  }

  /**
   * Schedules the relay again for when the other invocation's lease ends: by then it has
   * settled its targets (read here as done) or died (taken over here). A new message id, or the
   * broker's duplicate detection would drop the copy as the original.
   */
  private async deferUntil(
    work: RelayWork,
    guarded: readonly Guarded[],
    logger: Logger,
  ): Promise<void> {
    const leaseEnd = Math.max(
      ...guarded.map((d) => (d.kind === "busy" ? d.leaseUntil.getTime() : 0)),
    );
    const at = new Date(leaseEnd + 1_000);
    const message = relayMessage(work);
    await this.deps.queue.schedule(
      { ...message, messageId: `${message.messageId ?? "m"}-${at.getTime().toString(36)}` },
      at,
    );
    logger.info("Relay deferred: another invocation holds a live claim", {
      busy: guarded.length - guarded.filter((d) => d.kind !== "busy").length,
      at: at.toISOString(),
    });
  }

  /** The summary in the thread of the asking message; a lost summary is logged, not retried. */
  private async reply(
    context: TurnContext,
    work: RelayWork,
    text: string,
    logger: Logger,
  ): Promise<void> {
    const claim = await this.claim(work, { kind: "reply" }, logger);
    // Settled: an earlier invocation replied (or failed to); busy: one is replying now.
    if (claim !== "unguarded" && claim.kind !== "claimed") return;
    const reason = await this.sendReply(context, work, text, logger);
    if (claim !== "unguarded") {
      await this.settle(
        claim.claim,
        reason === undefined ? { state: "sent" } : { state: "failed", reason },
        logger,
      );
    }
  }

  /** Sends the reply; the failure's summary, or undefined once Teams took it. */
  private async sendReply(
    context: TurnContext,
    work: RelayWork,
    text: string,
    logger: Logger,
  ): Promise<string | undefined> {
    try {
      await this.deps.pace(work.tenantId, work.conversationId);
      const client = await singleAttemptConnectorOf(context, logger);
      const reply: Partial<Activity> = {
        type: "message",
        textFormat: "markdown",
        text,
        conversation: { id: work.conversationId } as Activity["conversation"],
        ...(work.activityId !== "" ? { replyToId: work.activityId } : {}),
      };
      if (work.activityId !== "")
        await client.conversations.replyToActivity(work.conversationId, work.activityId, reply);
      else await client.conversations.sendToConversation(work.conversationId, reply);
      return undefined;
    } catch (error) {
      const reason = describeFailure(error);
      logger.warn("Reply could not be delivered", { reason });
      return reason;
    }
  }

  /**
   * Claims one row of the relay's ledger. "unguarded": the activity has no id (Teams always
   * sends one for a channel message; a client that does not cannot be told apart from its own
   * redelivery), so there is no key to guard: the relay runs once per work item, and the
   * broker's duplicate detection is the only protection.
   */
  private async claim(
    work: RelayWork,
    target: RelayTarget,
    logger: Logger,
  ): Promise<RelayClaimOutcome | "unguarded"> {
    if (work.activityId === "") {
      logger.warn("Relay of an activity without id: not guarded against redelivery");
      return "unguarded";
    }
    return this.deps.ledger.claim({
      tenantId: work.tenantId,
      conversationId: work.conversationId,
      activityId: work.activityId,
      target,
    });
  }

  private async settle(
    claim: RelayClaim,
    outcome: Parameters<RelayLedger["settle"]>[1],
    logger: Logger,
  ): Promise<void> {
    if ((await this.deps.ledger.settle(claim, outcome)) === "lost") {
      logger.warn("Relay claim lost to a takeover while sending: a second copy is possible", {
        row: claim.key.target.kind,
      });
    }
  }

  /** One target, at most once: a settled row is reported as it was, without calling Teams. */
  private async deliverOnce(
    context: TurnContext,
    work: RelayWork,
    target: { id: string; name?: string | undefined },
    text: string,
    logger: Logger,
  ): Promise<Guarded> {
    const claim = await this.claim(work, { kind: "user", teamsUserId: target.id }, logger);
    if (claim !== "unguarded" && claim.kind === "busy") return claim;
    if (claim !== "unguarded" && claim.kind === "settled") {
      return this.recorded(work, target, claim.record);
    }
    const delivery = await this.deliver(context, work, target, text, logger);
    if (claim !== "unguarded") {
      await this.settle(
        claim.claim,
        delivery.kind === "sent"
          ? { state: "sent", activityId: delivery.activityId }
          : {
              state: "failed",
              reason: delivery.kind === "unknown" ? UNKNOWN_REASON : delivery.reason,
            },
        logger,
      );
    }
    return delivery;
  }

  /** What an earlier invocation did for this target, named as the reply names it. */
  private async recorded(
    work: RelayWork,
    target: { id: string; name?: string | undefined },
    record: RelayRecord,
  ): Promise<Delivery> {
    const known = await this.deps.users.findByTeamsUserId(work.tenantId, target.id);
    const name = known?.name ?? target.name ?? "someone";
    if (record.state === "sent") return { kind: "sent", name };
    if (record.reason === UNKNOWN_REASON) return { kind: "unknown", name };
    return { kind: "failed", name, reason: record.reason ?? "" };
  }

  private async deliver(
    context: TurnContext,
    work: RelayWork,
    target: { id: string; name?: string | undefined },
    text: string,
    logger: Logger,
  ): Promise<Delivery> {
    const reference = await this.resolve(context, work, target.id, logger);
    const name = reference?.name ?? target.name ?? "someone";
    if (reference === undefined) return { kind: "unknown", name };

    // Single-attempt, like every send of Herald's own (see singleAttemptConnectorOf): a failure
    // is reported to the asker in the summary.
    const send = pacedSender(context, this.deps, work.tenantId, logger);
    const message = { type: "message", textFormat: "markdown", text } as const;
    let conversationId = reference.conversationId;
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        if (conversationId === undefined) {
          await this.deps.pace(work.tenantId);
          conversationId = await createPersonalConversation(
            context,
            {
              botId: work.botId,
              tenantId: work.tenantId,
              teamsUserId: reference.teamsUserId,
            },
            logger,
          );
          await this.deps.users.setConversationId(
            work.tenantId,
            reference.teamsUserId,
            conversationId,
          );
        }
        const activityId = await send(conversationId, message);
        return { kind: "sent", name, activityId };
      } catch (error) {
        const status = statusCodeOf(error);
        const code = teamsErrorCode(error);
        if (status === 404 && attempt === 1 && reference.conversationId !== undefined) {
          // The user deleted the chat: the stored id is dead. Create the conversation again, once.
          logger.warn("Stored 1:1 conversation not found; creating it again", { code });
          await this.deps.users.setConversationId(work.tenantId, reference.teamsUserId, undefined);
          conversationId = undefined;
          continue;
        }
        if (status === 403) {
          await this.deps.users.markStatus(
            work.tenantId,
            reference.teamsUserId,
            "unreachable",
            `relay refused: ${code ?? "403"}`,
          );
        }
        const reason = describeFailure(error);
        logger.warn("Relay to a mentioned user failed", { reason });
        return { kind: "failed", name, reason };
      }
    }
    return { kind: "failed", name, reason: "conversation not found" };
  }

  /**
   * The stored reference, or one learned now from the conversation's roster (a member Herald
   * has not seen yet); undefined when Teams does not know the user in this conversation either.
   */
  private async resolve(
    context: TurnContext,
    work: RelayWork,
    teamsUserId: string,
    logger: Logger,
  ): Promise<UserReference | undefined> {
    const known = await this.deps.users.findByTeamsUserId(work.tenantId, teamsUserId);
    if (known !== undefined) return known;
    try {
      await this.deps.pace(work.tenantId);
      const member = await TeamsInfo.getMember(context, teamsUserId);
      const outcome = await this.deps.users.upsert({
        tenantId: work.tenantId,
        teamsUserId,
        aadObjectId: member.aadObjectId,
        name: member.name,
        userPrincipalName: member.userPrincipalName,
        email: member.email,
        serviceUrl: context.activity.serviceUrl,
        learnedFrom: "team",
      });
      return outcome.reference;
    } catch (error) {
      logger.info("Mentioned user is unknown to Herald and to this conversation", {
        reason: describeFailure(error),
      });
      return undefined;
    }
  }
}

/** The message text without the `<at>…</at>` mention markup. */
export function stripMentions(
  text: string,
  mentions: readonly { text: string | undefined }[],
): string {
  let out = text;
  for (const m of mentions) if (m.text) out = out.split(m.text).join(" ");
  return out
    .replace(/<at>[^<]*<\/at>/gi, " ")
    .replace(/&nbsp;/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

function list(names: readonly string[]): string {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

function summarise(deliveries: readonly Delivery[]): string {
  const sent = deliveries.filter((d) => d.kind === "sent").map((d) => d.name);
  const unknown = deliveries.filter((d) => d.kind === "unknown").map((d) => d.name);
  const failed = deliveries.filter((d) => d.kind === "failed").map((d) => d.name);
  const lines: string[] = [];
  if (sent.length > 0) lines.push(`✅ Sent your message privately to ${list(sent)}.`);
  if (unknown.length > 0) {
    lines.push(
      `⚠️ I couldn't reach ${list(unknown)}: I haven't met them yet. They need to install Herald, or be in a team where Herald is installed.`,
    );
  }
  if (failed.length > 0) {
    lines.push(
      `❌ Delivery to ${list(failed)} failed; Teams refused or was unavailable. Please try again later.`,
    );
  }
  return lines.join("\n\n");
}
