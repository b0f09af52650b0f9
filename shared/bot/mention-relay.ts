import { TeamsInfo, type TurnContext } from "botbuilder";

import { statusCodeOf } from "../errors";
import type { Logger } from "../logging";
import { mapLimited, type UserReference, type UserReferenceStore } from "../store/user-references";
import { mentionsOf, type ValidActivity } from "./activity-schema";
import {
  createPersonalConversation,
  describeFailure,
  replySafely,
  senderFor,
  teamsErrorCode,
} from "./connector";

export interface MentionRelayDeps {
  users: UserReferenceStore;
}

type Delivery =
  | { kind: "sent"; name: string }
  | { kind: "unknown"; name: string }
  | { kind: "failed"; name: string; reason: string };

/** Mentioned users relayed to in parallel; mentions are few and each is its own conversation. */
const RELAY_CONCURRENCY = 4;

/**
 * The seed's scenario: "@Herald @Ada @Grace the build is green" in a channel makes Herald
 * send "the build is green" (saying who asked) to Ada and Grace in their 1:1 chats, then
 * reply in the thread with what it did.
 */
export class MentionRelay {
  constructor(private readonly deps: MentionRelayDeps) {}

  async handle(context: TurnContext, activity: ValidActivity, logger: Logger): Promise<void> {
    const mentions = mentionsOf(activity);
    const botId = activity.recipient.id;
    if (!mentions.some((m) => m.id === botId)) {
      logger.info("Channel message without an @mention of Herald: ignored");
      return;
    }
    const targets = [
      ...new Map(
        mentions.filter((m) => m.id !== botId && m.id !== "").map((m) => [m.id, m]),
      ).values(),
    ];
    const message = stripMentions(activity.text ?? "", mentions);
    if (targets.length === 0 || message === "") {
      await replySafely(
        context,
        "To pass a message on, @mention me and one or more colleagues, followed by the message: for example **@Herald @Alex the build is green**.",
        logger,
      );
      logger.info("Relay request without recipients or text: answered with usage", {
        recipients: targets.length,
      });
      return;
    }

    const asker = activity.from.name ?? "A colleague";
    const teamName = activity.channelData?.team?.name ?? undefined;
    const relayed = `**${asker}** asked me to pass this on${teamName ? ` from ${teamName}` : ""}:\n\n${message}`;
    const deliveries = await mapLimited(targets, RELAY_CONCURRENCY, (target) =>
      this.deliver(context, activity, target, relayed, logger),
    );

    // The relays went out: a lost summary must not make Teams retry (and relay twice).
    await replySafely(
      context,
      { type: "message", textFormat: "markdown", text: summarise(deliveries) },
      logger,
    );
    logger.info("Relayed a channel message", {
      sent: deliveries.filter((d) => d.kind === "sent").length,
      unknown: deliveries.filter((d) => d.kind === "unknown").length,
      failed: deliveries.filter((d) => d.kind === "failed").length,
    });
  }

  private async deliver(
    context: TurnContext,
    activity: ValidActivity,
    target: { id: string; name: string | undefined },
    text: string,
    logger: Logger,
  ): Promise<Delivery> {
    const reference = await this.resolve(context, activity, target.id, logger);
    const name = reference?.name ?? target.name ?? "someone";
    if (reference === undefined) return { kind: "unknown", name };

    // Single-attempt, like every send of Herald's own (see singleAttemptConnectorOf): a failure
    // is reported to the asker in the summary, not retried while Teams waits for the answer.
    const send = senderFor(context, logger);
    const message = { type: "message", textFormat: "markdown", text } as const;
    let conversationId = reference.conversationId;
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        if (conversationId === undefined) {
          conversationId = await createPersonalConversation(
            context,
            {
              botId: activity.recipient.id,
              tenantId: activity.tenantId,
              teamsUserId: reference.teamsUserId,
            },
            logger,
          );
          await this.deps.users.setConversationId(
            activity.tenantId,
            reference.teamsUserId,
            conversationId,
          );
        }
        await send(conversationId, message);
        return { kind: "sent", name };
      } catch (error) {
        const status = statusCodeOf(error);
        const code = teamsErrorCode(error);
        if (status === 404 && attempt === 1 && reference.conversationId !== undefined) {
          // The user deleted the chat: the stored id is dead. Create the conversation again, once.
          logger.warn("Stored 1:1 conversation not found; creating it again", { code });
          await this.deps.users.setConversationId(
            activity.tenantId,
            reference.teamsUserId,
            undefined,
          );
          conversationId = undefined;
          continue;
        }
        if (status === 403) {
          await this.deps.users.markStatus(
            activity.tenantId,
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
   * The stored reference, or one learned now from the team's roster (a member Herald has not
   * seen yet); undefined when Teams does not know the user in this conversation either.
   */
  private async resolve(
    context: TurnContext,
    activity: ValidActivity,
    teamsUserId: string,
    logger: Logger,
  ): Promise<UserReference | undefined> {
    const known = await this.deps.users.findByTeamsUserId(activity.tenantId, teamsUserId);
    if (known !== undefined) return known;
    try {
      const member = await TeamsInfo.getMember(context, teamsUserId);
      const outcome = await this.deps.users.upsert({
        tenantId: activity.tenantId,
        teamsUserId,
        aadObjectId: member.aadObjectId,
        name: member.name,
        userPrincipalName: member.userPrincipalName,
        email: member.email,
        serviceUrl: activity.serviceUrl,
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
