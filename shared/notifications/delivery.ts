import {
  type ConnectorFailure,
  describeFailure,
  type TeamsConnector,
} from "../connector/teams-connector";
import { toError } from "../errors";
import { type Logger, recipientToken } from "../logging";
import type { QueuePort } from "../queue/queue-port";
import {
  type Delivery,
  type DeliveryLedger,
  type DeliveryPatch,
  type DeliveryState,
  FINAL_STATES,
} from "../store/delivery-ledger";
import type { NotificationRequestStore, RequestKey } from "../store/notification-requests";
import type { UserReference, UserReferenceStore } from "../store/user-references";
import { BoundedMap } from "../util/bounded-map";
import { retryDelayMs } from "./backoff";
import { metric } from "./metrics";
import type { Pacer } from "./pacing";
import type { ProactiveInstaller } from "./proactive-install";
import { recipientKey, recipientParts } from "./recipients";
import {
  type MessageActivity,
  type NotificationMessage,
  type Recipient,
  toActivity,
} from "./schema";
import { deliveryMessage, type DeliveryWork, type QueueMessageInfo } from "./work-items";

/** The user-reference operations delivery needs (the bot endpoint's store implements them). */
export type UserDirectory = Pick<
  UserReferenceStore,
  | "findByAadObjectId"
  | "findByUserPrincipalName"
  | "findByTeamsUserId"
  | "setConversationId"
  | "markStatus"
>;

export interface DeliveryDependencies {
  readonly requests: NotificationRequestStore;
  readonly ledger: DeliveryLedger;
  readonly users: UserDirectory;
  readonly connector: () => TeamsConnector;
  readonly queue: () => QueuePort;
  readonly pacer: Pacer | undefined;
  readonly maxAttempts: number;
  /** With `ProactiveInstall` on: reaches users Herald has never seen by installing the app. */
  readonly installer?: ProactiveInstaller | undefined;
  /**
   * The queue's max delivery count: on that delivery an unexpected error is recorded as
   * `failed` before the broker dead-letters the message (default `maxAttempts`; Bicep sets both
   * from one parameter).
   */
  readonly maxDeliveryCount?: number;
  /** How long a `sending` claim protects a delivery from others (default 2 min). */
  readonly claimLeaseMs?: number;
  /** Longest pacing wait spent inside the function; longer ones re-schedule (default 1 s). */
  readonly maxPaceWaitMs?: number;
  readonly clock?: () => Date;
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export type DeliveryResult =
  | { readonly outcome: "sent" | "unreachable" | "failed" | "rejected" }
  /** Another recipient of the request is the same person: they get that one copy. */
  | { readonly outcome: "same-person"; readonly as: string }
  /** A transient failure: a retry is scheduled. */
  | { readonly outcome: "retrying"; readonly at: Date }
  /** Pacing or another invocation's claim: the same attempt is scheduled for later. */
  | { readonly outcome: "deferred"; readonly at: Date }
  /** Already final (a redelivery or a duplicate request): nothing sent. */
  | { readonly outcome: "duplicate"; readonly state: DeliveryState };

/** What a delivery needs of its request. */
export interface RequestContent {
  readonly message: NotificationMessage;
  readonly summary?: string | undefined;
}

/** The work item without a reserved install slot (proactive-install.ts). */
function withoutInstallSlot(work: DeliveryWork): DeliveryWork {
  const { installSlotAt: _slot, ...rest } = work;
  return rest;
}

function contentKey(request: RequestKey): string {
  return `${request.tenantId.toLowerCase()}\n${request.id}`;
}

type SendOutcome =
  | { kind: "sent"; activityId: string; conversationId: string }
  | (ConnectorFailure & { conversationId: string | undefined });

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Delivers one recipient of one request, exactly once where Teams allows it:
 *
 * 1. A final ledger row ends it (redelivery, duplicate request).
 * 2. Resolve the user reference; unknown or uninstalled/unreachable users are `unreachable`.
 * 3. Pace (per tenant, per conversation); a long wait re-schedules instead of sleeping.
 * 4. Claim the row (`sending`, ETag-conditional) so a concurrent copy backs off.
 * 5. Reuse the stored 1:1 conversation or create and store it; send; on 404 for a stored id,
 *    forget it, create it again once and send.
 * 6. Record the outcome: `sent` with the activity id; 403 `unreachable` (user marked);
 *    400/413 `rejected`; 500 and the like `failed`; 429/412/5xx/timeouts a scheduled retry
 *    (Retry-After, exponential back-off with jitter) until `maxAttempts`, then `failed`.
 *
 * 7. Anything else thrown (storage down, a bug) is noted on the row (`lastError`) and rethrown
 *    for the broker to redeliver; on the last delivery (`maxDeliveryCount`) the row is recorded
 *    `failed` first, so the status shows a final state for a message about to be dead-lettered.
 *
 * The window between send and record: if the process dies after Teams accepted the activity
 * and before `sent` is written, the row stays `sending`. Its message comes back (same message
 * id, higher delivery count) and sends again: at most one duplicate per crash, never a loss.
 * A different copy finding a live claim waits for the claim to expire instead.
 */
export class DeliveryService {
  private readonly claimLeaseMs: number;
  private readonly maxDeliveryCount: number;
  private readonly maxPaceWaitMs: number;
  private readonly clock: () => Date;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly contentCache = new BoundedMap<string, RequestContent>(500);

  constructor(private readonly deps: DeliveryDependencies) {
    this.claimLeaseMs = deps.claimLeaseMs ?? 120_000;
    this.maxDeliveryCount = deps.maxDeliveryCount ?? deps.maxAttempts;
    this.maxPaceWaitMs = deps.maxPaceWaitMs ?? 1_000;
    this.clock = deps.clock ?? (() => new Date());
    this.random = deps.random ?? Math.random;
    this.sleep = deps.sleep ?? defaultSleep;
  }

  /**
   * `inline`: the single recipient of a request, delivered in the request's own invocation. On
   * its first delivery its ledger row cannot exist yet, so it is not read: it is created already
   * claimed, with the user's guard, in one transaction (the steady path's one write before the
   * call to Teams).
   */
  async deliver(
    work: DeliveryWork,
    info: QueueMessageInfo,
    log: Logger,
    options: { inline?: boolean } = {},
  ): Promise<DeliveryResult> {
    const key = recipientKey(work.recipient);
    const request = { tenantId: work.tenantId, id: work.requestId };
    // Never the UPN or id itself: a stable token (shared/logging.ts, recipientToken).
    const recipientLog = log.with({ recipient: recipientToken(key), attempt: work.attempt });
    try {
      const entry =
        options.inline === true && info.deliveryCount === 1
          ? undefined
          : await this.deps.ledger.ensure(request, key, work.recipient);
      return await this.run(work, key, entry, info, recipientLog);
    } catch (error) {
      // Unexpected (storage down, a bug): note it on the row, then let the broker redeliver
      // (and dead-letter after its max delivery count). The claim, if any, stays: the
      // redelivery of this same message recognises it as its own. On the last delivery the
      // row is recorded `failed` instead: nothing will come back for it.
      const message = toError(error).message.slice(0, 500);
      if (this.isLastDelivery(info)) {
        recipientLog.error(
          "Delivery failed unexpectedly on its last delivery; recorded failed, the message goes to the dead-letter queue",
          { error: message, deliveryCount: info.deliveryCount },
        );
        await this.failFinally(work, key, message, info, recipientLog);
      } else {
        recipientLog.error("Delivery failed unexpectedly; the message will be redelivered", {
          error: message,
          deliveryCount: info.deliveryCount,
        });
        await this.noteError(work, key, message, info.deliveryCount);
      }
      throw error;
    }
  }

  /** `entry` undefined: the row is (almost certainly) not written yet. */
  private async run(
    work: DeliveryWork,
    key: string,
    initial: Delivery | undefined,
    info: QueueMessageInfo,
    log: Logger,
  ): Promise<DeliveryResult> {
    const requestKey = { tenantId: work.tenantId, id: work.requestId };
    const row = async () =>
      initial ?? (await this.deps.ledger.ensure(requestKey, key, work.recipient));
    if (initial !== undefined && FINAL_STATES.has(initial.state)) {
      log.info("Delivery already final; not sending again", { state: initial.state });
      metric(log, "notifications.duplicate");
      return { outcome: "duplicate", state: initial.state };
    }
    const now = this.clock();
    if (initial?.state === "sending" && !this.mayTakeOver(initial, info, now)) {
      const at = new Date(Date.parse(initial.claimExpiresAt ?? now.toISOString()) + 1_000);
      log.info("Another invocation holds this delivery; checking again when its claim expires", {
        claimedBy: initial.claimedBy,
        at: at.toISOString(),
      });
      await this.deps.queue().schedule(deliveryMessage(work, { unique: true }), at);
      return { outcome: "deferred", at };
    }

    const content = await this.content(requestKey);
    if (content === undefined) {
      return this.finish(await row(), "failed", log, {
        lastError: `request ${work.requestId} has no stored message (work item without its request)`,
      });
    }

    const user = await this.resolve(work.tenantId, work.recipient);
    if (user === undefined) {
      const installer = this.deps.installer;
      if (installer !== undefined)
        return this.installThenSend(installer, work, key, await row(), content, info, log);
      return this.finish(await row(), "unreachable", log, {
        lastError: `no user reference for ${recipientParts(work.recipient).kind} in tenant ${work.tenantId}: the user has not installed the bot or been seen in a team with it (ProactiveInstall is off: Herald does not install the app for users it has not seen)`,
      });
    }
    return this.sendTo(work, key, initial, user, content, info, log);
  }

  /**
   * A recipient Herald has never seen: one step of the proactive install (proactive-install.ts),
   * then the send once the 1:1 chat is known; waits and retries are scheduled work items.
   */
  private async installThenSend(
    installer: ProactiveInstaller,
    work: DeliveryWork,
    key: string,
    entry: Delivery,
    content: RequestContent,
    info: QueueMessageInfo,
    log: Logger,
  ): Promise<DeliveryResult> {
    const step = await installer.advance(work, entry, log);
    switch (step.kind) {
      case "ready":
        return this.sendTo(work, key, step.row, step.user, content, info, log);
      case "unreachable":
        return this.finish(step.row, "unreachable", log, { lastError: step.reason });
      case "failed":
        return this.finish(step.row, "failed", log, { lastError: step.reason });
      case "later": {
        const next = withoutInstallSlot(work);
        await this.deps
          .queue()
          .schedule(
            deliveryMessage(
              step.installSlotAt === undefined
                ? next
                : { ...next, installSlotAt: step.installSlotAt.toISOString() },
              { unique: true },
            ),
            step.at,
          );
        // A retry's error and time are history once the step moved on: the status shows the wait.
        if (step.row.nextAttemptAt !== undefined)
          await this.deps.ledger.update(step.row, {
            lastError: undefined,
            nextAttemptAt: undefined,
          });
        log.info("Proactive install: checking again later", {
          step: step.row.state,
          reason: step.reason,
          at: step.at.toISOString(),
        });
        return { outcome: "deferred", at: step.at };
      }
      case "retry":
        // A retry waits for a fresh install slot: the reserved one was used by the failed call.
        return this.retryLater(withoutInstallSlot(work), step.row, log, {
          lastError: step.reason,
          retryAfterMs: step.retryAfterMs,
          // Graph's calls count as attempts here: "gave up after N attempts" matches the row.
          patch: { attempts: step.row.attempts + 1 },
          message: "Proactive install: Graph or Teams failed for now; retry scheduled",
          properties: { step: step.row.state },
        });
    }
  }

  /** Paces, claims, sends to a resolved user and records the outcome. */
  private async sendTo(
    work: DeliveryWork,
    key: string,
    initial: Delivery | undefined,
    user: UserReference,
    content: RequestContent,
    info: QueueMessageInfo,
    log: Logger,
  ): Promise<DeliveryResult> {
    const requestKey = { tenantId: work.tenantId, id: work.requestId };
    const row = async () =>
      initial ?? (await this.deps.ledger.ensure(requestKey, key, work.recipient));
    const claimant = `${info.messageId}#${info.deliveryCount}`;
    if (user.status === "uninstalled" || user.status === "unreachable") {
      return this.finish(await row(), "unreachable", log, {
        teamsUserId: user.teamsUserId,
        lastError: `user reference is ${user.status}${user.statusReason !== undefined ? ` (${user.statusReason})` : ""}`,
      });
    }

    // Load the connector (botbuilder: ~0.5 s on first use) before taking a pacing slot, so the
    // load does not sit between the slot and the call and bunch the first calls together.
    this.deps.connector();
    const paceDelay = await this.pace(work.tenantId, user.conversationId, this.maxPaceWaitMs);
    if (paceDelay !== undefined) {
      const at = new Date(this.clock().getTime() + paceDelay);
      await this.deps.queue().schedule(deliveryMessage(work, { unique: true }), at);
      log.info("Paced: delivery deferred", { at: at.toISOString() });
      metric(log, "notifications.deferred");
      return { outcome: "deferred", at };
    }

    const claim = {
      claimedBy: claimant,
      claimExpiresAt: new Date(this.clock().getTime() + this.claimLeaseMs).toISOString(),
      deliveryCount: info.deliveryCount,
      teamsUserId: user.teamsUserId,
    };
    const claimed =
      initial === undefined
        ? await this.deps.ledger.createClaimed(requestKey, key, work.recipient, claim)
        : await this.deps.ledger.claim(initial, claim);
    if (claimed === "exists") {
      // A copy of this inline delivery wrote the row first: go the usual way with it.
      return this.run(work, key, await row(), info, log);
    }
    if (claimed !== "conflict" && "guardTakenBy" in claimed) {
      log.info("Another recipient of this request is the same person; no second copy", {
        sameAs: recipientToken(claimed.guardTakenBy),
      });
      metric(log, "notifications.samePerson");
      return this.finish(await row(), "duplicate", log, {
        teamsUserId: user.teamsUserId,
        duplicateOf: claimed.guardTakenBy,
        lastError: undefined,
      });
    }
    if (claimed === "conflict") {
      const latest = await this.deps.ledger.get(requestKey, key);
      if (latest !== undefined && FINAL_STATES.has(latest.state)) {
        metric(log, "notifications.duplicate");
        return { outcome: "duplicate", state: latest.state };
      }
      const at = new Date(this.clock().getTime() + this.claimLeaseMs);
      log.info("Lost the claim race for this delivery; checking again later", {
        at: at.toISOString(),
      });
      await this.deps.queue().schedule(deliveryMessage(work, { unique: true }), at);
      return { outcome: "deferred", at };
    }

    const activity = toActivity(content.message, content.summary);
    const sent = await this.send(work.tenantId, user, activity, log);
    return this.record(work, claimed, sent, log);
  }

  /** A `sending` row may be taken over when its claim expired or was this message's own. */
  private mayTakeOver(entry: Delivery, info: QueueMessageInfo, now: Date): boolean {
    if (entry.claimExpiresAt === undefined || Date.parse(entry.claimExpiresAt) <= now.getTime())
      return true;
    const [messageId, count] = (entry.claimedBy ?? "").split("#");
    return messageId === info.messageId && Number(count) < info.deliveryCount;
  }

  private async send(
    tenantId: string,
    user: UserReference,
    activity: MessageActivity,
    log: Logger,
  ): Promise<SendOutcome> {
    const connector = this.deps.connector();
    let conversationId = user.conversationId;
    let fresh = false;
    if (conversationId === undefined) {
      const created = await this.create(tenantId, user, log);
      if (created.kind !== "created") return { ...created, conversationId: undefined };
      conversationId = created.conversationId;
      fresh = true;
    }
    let result = await connector.sendActivity({
      serviceUrl: user.serviceUrl,
      conversationId,
      activity: activity as unknown as Record<string, unknown>,
    });
    if (result.kind === "conversationGone" && !fresh) {
      // The user deleted the chat: never keep a dead id (Company Communicator's classic bug).
      log.warn("Stored 1:1 conversation is gone (404); creating it again once", {
        code: result.code,
      });
      await this.deps.users.setConversationId(tenantId, user.teamsUserId, undefined);
      const created = await this.create(tenantId, user, log);
      if (created.kind !== "created") return { ...created, conversationId: undefined };
      conversationId = created.conversationId;
      await this.paceInline(tenantId, conversationId);
      result = await connector.sendActivity({
        serviceUrl: user.serviceUrl,
        conversationId,
        activity: activity as unknown as Record<string, unknown>,
      });
    }
    if (result.kind === "sent") return { ...result, conversationId };
    if (result.kind === "conversationGone") {
      return {
        ...result,
        kind: "failed",
        conversationId,
        message: `conversation not found right after creating it: ${result.message}`,
      };
    }
    return { ...result, conversationId };
  }

  private async create(tenantId: string, user: UserReference, log: Logger) {
    const created = await this.deps.connector().createPersonalConversation({
      serviceUrl: user.serviceUrl,
      tenantId,
      teamsUserId: user.teamsUserId,
    });
    if (created.kind === "created") {
      await this.deps.users.setConversationId(tenantId, user.teamsUserId, created.conversationId);
      log.info("Created the 1:1 conversation and stored its id");
      // The send that follows is a second call against the tenant's budget.
      await this.paceInline(tenantId, created.conversationId);
      return created;
    }
    // A 404 on create is not a deleted chat: the user or tenant is unknown to Teams.
    if (created.kind === "conversationGone") return { ...created, kind: "failed" as const };
    return created;
  }

  /**
   * Waits for a pacing slot if it comes within `maxWaitMs`; otherwise returns how long until
   * one would (the caller re-schedules instead of holding the function).
   */
  private async pace(
    tenantId: string,
    conversationId: string | undefined,
    maxWaitMs: number,
  ): Promise<number | undefined> {
    const pacer = this.deps.pacer;
    if (pacer === undefined) return undefined;
    for (;;) {
      const grant = pacer.reserve(tenantId, conversationId, maxWaitMs);
      if (grant.granted) {
        if (grant.delayMs > 0) await this.sleep(grant.delayMs);
        return undefined;
      }
      if (grant.delayMs > maxWaitMs) return grant.delayMs;
      await this.sleep(grant.delayMs);
    }
  }

  /** Pacing for the second call of a delivery (a send after a create): always waits. */
  private async paceInline(tenantId: string, conversationId: string): Promise<void> {
    await this.pace(tenantId, conversationId, Infinity);
  }

  private async record(
    work: DeliveryWork,
    entry: Delivery,
    sent: SendOutcome,
    log: Logger,
  ): Promise<DeliveryResult> {
    if (sent.kind === "sent") {
      return this.finish(entry, "sent", log, {
        activityId: sent.activityId,
        conversationId: sent.conversationId,
        lastError: undefined,
        lastStatus: undefined,
      });
    }
    const lastError = describeFailure(sent);
    const detail = { lastError, lastStatus: sent.status, conversationId: sent.conversationId };
    switch (sent.kind) {
      case "recipientGone": {
        const teamsUserId = entry.teamsUserId ?? "";
        await this.deps.users.markStatus(
          work.tenantId,
          teamsUserId,
          "unreachable",
          sent.code ?? "403",
        );
        // A blocked conversation's id is useless; a fresh one is created when the user returns.
        if (sent.code === "ConversationBlockedByUser")
          await this.deps.users.setConversationId(work.tenantId, teamsUserId, undefined);
        return this.finish(entry, "unreachable", log, detail);
      }
      case "rejected":
        return this.finish(entry, "rejected", log, detail);
      case "failed":
        if (sent.status === 401)
          log.error(
            "Teams refused the bot's credentials (401): check MicrosoftAppId and its identity",
          );
        return this.finish(entry, "failed", log, detail);
      case "conversationGone":
        return this.finish(entry, "failed", log, detail);
      case "throttled":
      case "transient": {
        if (sent.kind === "throttled") {
          this.deps.pacer?.throttled(work.tenantId, sent.conversationId, sent.retryAfterMs);
          metric(log, "notifications.throttled");
        }
        return this.retryLater(work, entry, log, {
          lastError,
          retryAfterMs: sent.retryAfterMs,
          patch: { ...detail, state: "pending", claimedBy: undefined, claimExpiresAt: undefined },
          message: "Transient failure; retry scheduled",
          properties: { status: sent.status, code: sent.code, retryAfterMs: sent.retryAfterMs },
        });
      }
    }
  }

  /**
   * The next attempt of a failure that may pass (429, 5xx), scheduled after Retry-After or the
   * back-off, with `patch` and the retry time on the row; past `maxAttempts`, `failed`.
   */
  private async retryLater(
    work: DeliveryWork,
    entry: Delivery,
    log: Logger,
    failure: {
      lastError: string;
      retryAfterMs: number | undefined;
      patch: DeliveryPatch;
      message: string;
      properties: Record<string, unknown>;
    },
  ): Promise<DeliveryResult> {
    if (work.attempt >= this.deps.maxAttempts) {
      return this.finish(entry, "failed", log, {
        ...failure.patch,
        lastError: `${failure.lastError} (gave up after ${work.attempt} attempts)`,
      });
    }
    const delay = retryDelayMs(work.attempt, failure.retryAfterMs, this.random);
    const at = new Date(this.clock().getTime() + delay);
    // Schedule first: a crash before the ledger update then costs a repeated attempt, not a lost one.
    await this.deps.queue().schedule(deliveryMessage({ ...work, attempt: work.attempt + 1 }), at);
    await this.deps.ledger.update(entry, {
      ...failure.patch,
      lastError: failure.lastError,
      nextAttemptAt: at.toISOString(),
    });
    log.warn(failure.message, {
      ...failure.properties,
      nextAttempt: work.attempt + 1,
      at: at.toISOString(),
    });
    metric(log, "notifications.retried");
    return { outcome: "retrying", at };
  }

  private async finish(
    entry: Delivery,
    state: "sent" | "unreachable" | "failed" | "rejected" | "duplicate",
    log: Logger,
    patch: DeliveryPatch,
  ): Promise<DeliveryResult> {
    const now = this.clock().toISOString();
    let current = entry;
    for (let attempt = 0; attempt < 5; attempt++) {
      const updated = await this.deps.ledger.update(current, {
        ...patch,
        state,
        claimedBy: undefined,
        claimExpiresAt: undefined,
        nextAttemptAt: undefined,
        completedAt: now,
      });
      if (updated !== "conflict") break;
      // Someone touched the row meanwhile (a concurrent copy): the first final state wins.
      const latest = await this.deps.ledger.get(
        { tenantId: entry.tenantId, id: entry.requestId },
        entry.recipientKey,
      );
      if (latest === undefined) break;
      if (FINAL_STATES.has(latest.state)) {
        if (state === "sent" && latest.state !== "sent")
          log.warn("Sent, but a concurrent copy had already recorded another outcome", {
            recorded: latest.state,
          });
        return { outcome: "duplicate", state: latest.state };
      }
      current = latest;
    }
    // The caller logged a second name of one person; it is no failure.
    if (state === "duplicate") return { outcome: "same-person", as: patch.duplicateOf ?? "" };
    const properties = { state, lastError: patch.lastError, status: patch.lastStatus };
    if (state === "sent") log.info("Notification delivered", { activityId: patch.activityId });
    else log.warn(`Notification ${state}`, properties);
    metric(log, `notifications.${state}`);
    return { outcome: state };
  }

  /** True on the delivery after which the broker dead-letters instead of redelivering. */
  private isLastDelivery(info: QueueMessageInfo): boolean {
    return info.deliveryCount >= this.maxDeliveryCount;
  }

  /**
   * Records `failed` for a delivery whose message is about to be dead-lettered. A row that is
   * final, or `sending` under another invocation's live claim (that one records its own
   * outcome), is left alone. Best effort: the store is likely what failed.
   */
  private async failFinally(
    work: DeliveryWork,
    key: string,
    message: string,
    info: QueueMessageInfo,
    log: Logger,
  ): Promise<void> {
    try {
      const latest = await this.deps.ledger.get(
        { tenantId: work.tenantId, id: work.requestId },
        key,
      );
      if (latest === undefined || FINAL_STATES.has(latest.state)) return;
      const own = latest.claimedBy === `${info.messageId}#${info.deliveryCount}`;
      if (latest.state === "sending" && !own && !this.mayTakeOver(latest, info, this.clock()))
        return;
      await this.finish(latest, "failed", log, {
        deliveryCount: info.deliveryCount,
        lastError: `unexpected: ${message} (delivery ${info.deliveryCount}, the last: dead-lettered)`,
      });
    } catch {
      // The store is what failed, most likely: the dead-letter queue is the record now.
    }
  }

  private async noteError(
    work: DeliveryWork,
    key: string,
    message: string,
    deliveryCount: number,
  ): Promise<void> {
    try {
      const latest = await this.deps.ledger.get(
        { tenantId: work.tenantId, id: work.requestId },
        key,
      );
      if (latest === undefined || FINAL_STATES.has(latest.state)) return;
      await this.deps.ledger.update(latest, {
        lastError: `unexpected: ${message} (delivery ${deliveryCount})`,
        deliveryCount,
      });
    } catch {
      // The store is what failed, most likely: the broker's redelivery is the record now.
    }
  }

  private async resolve(
    tenantId: string,
    recipient: Recipient,
  ): Promise<UserReference | undefined> {
    const users = this.deps.users;
    if (recipient.teamsUserId !== undefined)
      return users.findByTeamsUserId(tenantId, recipient.teamsUserId);
    if (recipient.aadObjectId !== undefined)
      return users.findByAadObjectId(tenantId, recipient.aadObjectId);
    if (recipient.userPrincipalName !== undefined)
      return users.findByUserPrincipalName(tenantId, recipient.userPrincipalName);
    return undefined;
  }

  /** The request's message, cached: it never changes once accepted. */
  private async content(request: RequestKey): Promise<RequestContent | undefined> {
    const cacheKey = contentKey(request);
    const cached = this.contentCache.get(cacheKey);
    if (cached !== undefined) return cached;
    const stored = await this.deps.requests.get(request);
    if (stored?.message === undefined) return undefined;
    const content = { message: stored.message, summary: stored.summary };
    this.remember(request, content);
    return content;
  }

  /**
   * Keeps a request's content known elsewhere (the dispatch read it, or carried it), so
   * delivery need not read it again.
   */
  remember(request: RequestKey, content: RequestContent): void {
    this.contentCache.set(contentKey(request), content);
  }
}
