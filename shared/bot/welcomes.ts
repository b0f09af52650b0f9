import type { Activity } from "botbuilder";

import type { Logger } from "../logging";
import type { QueuePort } from "../queue/queue-port";
import {
  heraldInstalled,
  welcomeDone,
  welcomeKeys,
  type WelcomeLedger,
  type WelcomeSubject,
} from "../store/welcome-ledger";
import { type ConversationSender, describeFailure } from "./connector";
import { personalWelcome, teamWelcome } from "./welcome-messages";
import {
  checkJobOf,
  conversationOf,
  subjectOf,
  type WelcomeCheckJob,
  welcomeCheckMessage,
  type WelcomeTarget,
} from "./welcome-target";

/** `skipped`: Herald installed the app for the user (proactive install): no welcome, by design. */
export type WelcomeOutcome = "sent" | "alreadySent" | "inProgress" | "failed" | "skipped";

/** Welcomes the process has seen recorded as sent: skips the ledger read on later activities. */
const KNOWN_SENT_LIMIT = 50_000;

export interface WelcomerOptions {
  /** Where lease checks go (the work queue). Without one, only activities recover. */
  queue?: QueuePort;
  clock?: () => Date;
  /** How long after a lease ends its check runs (clock skew between instances). Default 5 s. */
  checkMarginMs?: number;
  /** Checks in one chain before giving up with a logged error. Default 5. */
  maxChecks?: number;
}

/**
 * Sends each welcome at most once (the ledger's protocol, see welcome-ledger.ts) and at least
 * once: every claim, and every activity that finds someone else's claim, schedules a
 * `welcome-check` work item for the claim's lease end. The check (welcome-check.ts) sends the
 * welcome if the claim's sender died or its send failed, so recovery does not wait for the
 * user's next activity. A check that finds a live claim schedules the next; a chain gives up
 * after `maxChecks` with an error (the user's next activity still recovers it).
 */
export class Welcomer {
  private readonly knownSent = new Set<string>();
  private readonly clock: () => Date;
  private readonly checkMarginMs: number;
  private readonly maxChecks: number;

  constructor(
    private readonly ledger: WelcomeLedger,
    private readonly options: WelcomerOptions = {},
  ) {
    this.clock = options.clock ?? (() => new Date());
    this.checkMarginMs = options.checkMarginMs ?? 5_000;
    this.maxChecks = options.maxChecks ?? 5;
  }

  /** Sends the welcome unless it was sent (or is being sent) already. */
  ensureWelcome(
    send: ConversationSender,
    target: WelcomeTarget,
    logger: Logger,
  ): Promise<WelcomeOutcome> {
    return this.ensure(target, 1, send, logger);
  }

  /**
   * True when Herald installed its app for this user (proactive install): Graph told Herald who
   * they are, so nobody needs to ask Teams for their details, and no welcome goes out.
   */
  async installedByHerald(tenantId: string, aadObjectId: string | undefined): Promise<boolean> {
    if (aadObjectId === undefined) return false;
    return heraldInstalled(await this.ledger.heraldInstallOf(tenantId, aadObjectId), this.clock());
  }

  /** True when this process has seen the welcome recorded as sent (no store read needed). */
  knownToBeSent(subject: WelcomeSubject): boolean {
    return this.knownSent.has(keyOf(subject));
  }

  /**
   * First half of a scheduled check: "due" when the welcome should be sent now (claim expired
   * or released, or no row); otherwise what was done (already sent; live claim rescheduled,
   * or given up after too many rounds).
   */
  async checkDue(
    job: WelcomeCheckJob,
    logger: Logger,
  ): Promise<"due" | "alreadySent" | "rescheduled" | "gaveUp"> {
    const record = await this.ledger.get(subjectOf(job));
    if (record !== undefined && welcomeDone(record)) {
      this.remember(keyOf(job));
      logger.info("Welcome check: already sent");
      return "alreadySent";
    }
    if (record?.state === "claimed" && Date.parse(record.leaseUntil) > this.clock().getTime()) {
      const next = checkJobOf(job, job.round + 1);
      if (!(await this.scheduleCheck(next, record.leaseUntil, record.owner, logger))) {
        this.giveUp(logger, record.lastError);
        return "gaveUp";
      }
      logger.info("Welcome check: claim still live; checking again at its lease end");
      return "rescheduled";
    }
    return "due";
  }

  /**
   * Second half of a scheduled check: claim (taking an expired or released claim over) and
   * send; that claim schedules the next round's check.
   */
  sendFromCheck(
    job: WelcomeCheckJob,
    target: WelcomeTarget,
    send: ConversationSender,
    logger: Logger,
  ): Promise<WelcomeOutcome> {
    return this.ensure(target, job.round + 1, send, logger);
  }

  /** `round`: the round of the check this call schedules for its claim. */
  private async ensure(
    target: WelcomeTarget,
    round: number,
    send: ConversationSender,
    parentLogger: Logger,
  ): Promise<WelcomeOutcome> {
    const key = keyOf(target);
    if (this.knownSent.has(key)) return "alreadySent";
    const logger = parentLogger.with({ welcome: target.scope });

    if (target.scope === "personal" && target.aadObjectId !== undefined) {
      const install = await this.ledger.heraldInstallOf(target.tenantId, target.aadObjectId);
      if (heraldInstalled(install, this.clock())) {
        const recorded = await this.ledger.skip(
          subjectOf(target),
          "not welcomed: Herald installed the app for this user to deliver a notification; the welcome is for users who open the chat themselves",
          install?.requestId,
        );
        if (recorded === "skipped") {
          this.remember(key);
          logger.info("Welcome skipped: Herald installed the app for this user");
          return "skipped";
        }
      }
    }

    const outcome = await this.ledger.claim(subjectOf(target));
    if (outcome.kind === "sent") {
      this.remember(key);
      return "alreadySent";
    }
    if (outcome.kind === "busy") {
      logger.info("Welcome already claimed by another delivery; not sending", {
        leaseUntil: outcome.record.leaseUntil,
      });
      // Its sender may have died before scheduling its check: make sure one runs.
      await this.scheduleCheck(
        checkJobOf(target, round),
        outcome.record.leaseUntil,
        outcome.record.owner,
        logger,
      );
      return "inProgress";
    }
    const { claim } = outcome;
    if (claim.takenOver) {
      logger.warn("Recovering a welcome whose earlier sender did not finish", {
        attempt: claim.attempt,
      });
    }

    // Scheduled before the send completes: a crash during the send leaves the check behind.
    const scheduled = this.scheduleCheck(
      checkJobOf(target, round),
      claim.leaseUntil,
      claim.owner,
      logger,
    );
    const conversationId = conversationOf(target);
    const activity: Partial<Activity> =
      target.scope === "personal" ? personalWelcome(target.name) : teamWelcome(target.name);
    let activityId: string | undefined;
    try {
      activityId = await send(conversationId, activity);
    } catch (error) {
      const reason = describeFailure(error);
      logger.warn("Welcome send failed; released for the scheduled check or the next activity", {
        reason,
      });
      await this.ledger.release(claim, reason);
      if (!(await scheduled)) this.giveUp(logger, reason);
      return "failed";
    }
    await scheduled;
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

  /**
   * Schedules the check of a claim for its lease end. Never throws: a queue outage costs only
   * the proactive recovery (the next activity still recovers the welcome). False when the
   * chain has used up its rounds: nothing scheduled.
   */
  private async scheduleCheck(
    job: WelcomeCheckJob,
    leaseUntil: string,
    claimOwner: string,
    logger: Logger,
  ): Promise<boolean> {
    if (job.round > this.maxChecks) return false;
    const queue = this.options.queue;
    if (queue === undefined) return true;
    const at = new Date(Date.parse(leaseUntil) + this.checkMarginMs);
    try {
      await queue.schedule(welcomeCheckMessage(job, claimOwner), at);
    } catch (error) {
      logger.warn("Could not schedule the welcome's lease check; the next activity recovers it", {
        reason: describeFailure(error),
      });
    }
    return true;
  }

  private giveUp(logger: Logger, lastError: string | undefined): void {
    logger.error(
      "Welcome still not sent after its scheduled checks; giving up until the next activity from the user or team",
      { checks: this.maxChecks, lastError },
    );
  }

  private remember(key: string): void {
    if (this.knownSent.size >= KNOWN_SENT_LIMIT) this.knownSent.clear();
    this.knownSent.add(key);
  }
}

function keyOf(target: WelcomeSubject): string {
  const { partitionKey, rowKey } = welcomeKeys(subjectOf(target));
  return `${partitionKey}/${rowKey}`;
}
