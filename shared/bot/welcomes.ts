import type { Activity } from "botbuilder";

import type { Logger } from "../logging";
import { welcomeKeys, type WelcomeLedger, type WelcomeSubject } from "../store/welcome-ledger";
import { type ConversationSender, describeFailure } from "./connector";
import { personalWelcome, teamWelcome } from "./welcome-messages";

export type WelcomeOutcome = "sent" | "alreadySent" | "inProgress" | "failed";

/** Welcomes the process has seen recorded as sent: skips the ledger read on later activities. */
const KNOWN_SENT_LIMIT = 50_000;

/**
 * Sends each welcome at most once (the ledger's protocol, see welcome-ledger.ts) and at least
 * once: a claim left behind by a sender that died is recovered by the next `ensure…` call
 * after the lease, i.e. on the user's next activity in their 1:1 chat (for a team: the next
 * activity in the team, or the roster sync).
 */
export class Welcomer {
  private readonly knownSent = new Set<string>();

  constructor(private readonly ledger: WelcomeLedger) {}

  ensurePersonal(
    send: ConversationSender,
    target: {
      tenantId: string;
      teamsUserId: string;
      name?: string | undefined;
      conversationId: string;
    },
    logger: Logger,
  ): Promise<WelcomeOutcome> {
    return this.ensure(
      { scope: "personal", tenantId: target.tenantId, teamsUserId: target.teamsUserId },
      target.conversationId,
      personalWelcome(target.name),
      send,
      logger,
    );
  }

  /** The team welcome goes to the General channel, whose conversation id is the team id. */
  ensureTeam(
    send: ConversationSender,
    target: { tenantId: string; teamId: string; name?: string | undefined },
    logger: Logger,
  ): Promise<WelcomeOutcome> {
    return this.ensure(
      { scope: "team", tenantId: target.tenantId, teamId: target.teamId },
      target.teamId,
      teamWelcome(target.name),
      send,
      logger,
    );
  }

  private async ensure(
    subject: WelcomeSubject,
    conversationId: string,
    activity: Partial<Activity>,
    send: ConversationSender,
    parentLogger: Logger,
  ): Promise<WelcomeOutcome> {
    const { partitionKey, rowKey } = welcomeKeys(subject);
    const key = `${partitionKey}/${rowKey}`;
    if (this.knownSent.has(key)) return "alreadySent";
    const logger = parentLogger.with({ welcome: subject.scope });

    const outcome = await this.ledger.claim(subject);
    if (outcome.kind === "sent") {
      this.remember(key);
      return "alreadySent";
    }
    if (outcome.kind === "busy") {
      logger.info("Welcome already claimed by another delivery; not sending", {
        leaseUntil: outcome.record.leaseUntil,
      });
      return "inProgress";
    }
    const { claim } = outcome;
    if (claim.takenOver) {
      logger.warn("Recovering a welcome whose earlier sender did not finish", {
        attempt: claim.attempt,
      });
    }

    let activityId: string | undefined;
    try {
      activityId = await send(conversationId, activity);
    } catch (error) {
      const reason = describeFailure(error);
      logger.warn("Welcome send failed; released for the next activity to retry", { reason });
      await this.ledger.release(claim, reason);
      return "failed";
    }
    const completed = await this.ledger.complete(claim, { activityId, conversationId });
    if (completed === "lost") {
      logger.error(
        "Welcome claim was taken over while this instance was sending: a second welcome may have gone out; raise WelcomeLeaseSeconds",
        { attempt: claim.attempt },
      );
    } else {
      logger.info("Welcome sent", { welcomeActivityId: activityId, attempt: claim.attempt });
    }
    this.remember(key);
    return "sent";
  }

  private remember(key: string): void {
    if (this.knownSent.size >= KNOWN_SENT_LIMIT) this.knownSent.clear();
    this.knownSent.add(key);
  }
}
