import { type Logger, recipientToken } from "../logging";
import { hasClickActions } from "../model/card-actions";
import { recipientParts } from "../model/recipient";
import type { QueuePort } from "../queue/queue-port";
import { type Delivery, type DeliveryLedger, FINAL_STATES } from "../store/delivery-ledger";
import type { NotificationRequestStore, RequestKey } from "../store/notification-requests";
import type { UnreadIndex } from "../store/unread-index";
import type { UserReference } from "../store/user-references";
import { sentActivity, withCardToken } from "./card-stamp";
import { followChange } from "./change-follow-up";
import type { DeliveryClaims } from "./delivery-claims";
import { DeliveryEvents } from "./delivery-events";
import type { DeliveryRecorder, DeliveryResult } from "./delivery-recorder";
import type { EventOutbox } from "./event-outbox";
import { metric } from "./metrics";
import { type ProactiveInstaller, withoutInstallSlot } from "./proactive-install";
import { recipientKey } from "./recipients";
import { type RequestContent, RequestContents } from "./request-contents";
import { decide, type RetryPolicy } from "./retry-policy";
import { startingRow, startsUnread } from "./starting-row";
import type { SendOutcome, TeamsOperations } from "./teams-operations";
import type { TenantWorkRunner } from "./tenant-work";
import { resolveUser, type UserDirectory } from "./user-directory";
import type { DeliveryWork, QueueMessageInfo } from "./work-items";

export type { DeliveryResult } from "./delivery-recorder";

export interface DeliveryDependencies {
  readonly requests: NotificationRequestStore;
  readonly ledger: DeliveryLedger;
  readonly users: UserDirectory;
  /** The tenant's Teams pacing (per tenant and conversation). */
  readonly work: TenantWorkRunner;
  readonly operations: TeamsOperations;
  readonly policy: RetryPolicy;
  readonly claims: DeliveryClaims;
  readonly recorder: DeliveryRecorder;
  readonly outbox: EventOutbox;
  /** Sent deliveries by user, for read receipts (written when events are on). */
  readonly unread: Pick<UnreadIndex, "add">;
  /** With `ProactiveInstall` on: reaches users Herald has never seen by installing the app. */
  readonly installer?: ProactiveInstaller | undefined;
  readonly clock: () => Date;
  /** Shared with updates and recalls; a queued delivery's may be `contentMaxAgeMs` old (1 s). */
  readonly contents?: RequestContents;
  readonly contentMaxAgeMs?: number;
  readonly queue?: () => QueuePort;
}

/** Claim rounds lost to other writers before the work steps back for a moment. */
const MAX_CLAIM_ROUNDS = 3;
const CLAIM_RACE_RECHECK_MS = 1_000;

/**
 * Delivers one recipient of one request, exactly once where Teams allows it:
 *
 * 1. A final ledger row ends it (redelivery, duplicate request); a claim that stands
 *    (delivery-claims.ts) sends it back until the claim would expire.
 * 2. Resolve the user reference; unknown or uninstalled/unreachable users are `unreachable`
 *    (or, with proactive install on, installed for: proactive-install.ts).
 * 3. Take the tenant's pacing slot (tenant-work.ts); a long wait re-schedules instead of sleeping.
 * 4. Claim the row (`sending`, ETag-conditional, with the person's guard) so a concurrent copy
 *    backs off and a second name of the person ends `duplicate`.
 * 5. Send through the Teams operations (teams-operations.ts): the stored chat, or one created.
 * 6. Record the outcome (delivery-recorder.ts): `sent` with the activity id, or what the policy
 *    (retry-policy.ts) decides for the failure: a scheduled retry, or a final state.
 * 7. Anything else thrown (storage down, a bug) is noted on the row and rethrown for the broker
 *    to redeliver; on the last delivery the row is recorded `failed` first.
 *
 * The window between send and record: if the process dies after Teams accepted the activity
 * and before `sent` is written, the row stays `sending`. Its message comes back (same message
 * id, higher delivery count) and sends again: at most one duplicate per crash, never a loss.
 */
export class DeliveryService {
  private readonly contents: RequestContents;
  private readonly contentMaxAgeMs: number;
  private readonly events: DeliveryEvents;

  constructor(private readonly deps: DeliveryDependencies) {
    this.contents = deps.contents ?? new RequestContents(deps.requests, () => +deps.clock());
    this.contentMaxAgeMs = deps.contentMaxAgeMs ?? 1_000;
    this.events = new DeliveryEvents(deps.outbox, deps.unread);
  }

  /**
   * `from: "dispatch"`: the single recipient of a request, delivered in the request's own
   * dispatch. On its first delivery its ledger row cannot exist yet, so it is not read: it is
   * created already claimed (the steady path's one write before the call to Teams). A fan-out's
   * first try claims the row as the fan-out wrote it, unread too (starting-row.ts).
   */
  async deliver(
    work: DeliveryWork,
    info: QueueMessageInfo,
    log: Logger,
    options: { from?: "dispatch" | "queue" } = {},
  ): Promise<DeliveryResult> {
    const key = recipientKey(work.recipient);
    // Never the UPN or id itself: a stable token (shared/logging.ts, recipientToken).
    const recipientLog = log.with({ recipient: recipientToken(key), attempt: work.attempt });
    try {
      const entry = await startingRow(this.deps.ledger, work, key, info, options.from);
      return await this.run(work, key, entry, info, recipientLog);
    } catch (error) {
      await this.deps.recorder.unexpected(work, key, error, info, recipientLog);
      throw error;
    }
  }

  /**
   * Keeps a request's content known elsewhere (the dispatch read it, or carried it), so
   * delivery need not read it again.
   */
  remember(request: RequestKey, content: RequestContent, readAt?: number): void {
    this.contents.remember(request, content, readAt);
  }

  /** `initial` undefined: the row is (almost certainly) not written yet. */
  private async run(
    work: DeliveryWork,
    key: string,
    initial: Delivery | undefined,
    info: QueueMessageInfo,
    log: Logger,
  ): Promise<DeliveryResult> {
    if (initial !== undefined && info.deliveryCount > 1) await this.events.republish(initial);
    if (initial !== undefined && FINAL_STATES.has(initial.state)) {
      log.info("Delivery already final; not sending again", { state: initial.state });
      metric(log, "notifications.duplicate");
      return { kind: "duplicate", state: initial.state };
    }
    const standing = initial === undefined ? undefined : this.deps.claims.standing(initial, info);
    if (standing?.kind === "held")
      return this.deps.recorder.defer(
        work,
        standing.recheckAt,
        log,
        "Another invocation holds this delivery; checking again later",
        { claimedBy: initial?.claimedBy, claimExpiresAt: standing.until.toISOString() },
      );

    const row = async () =>
      initial ?? (await this.deps.ledger.ensure(this.requestOf(work), key, work.recipient));
    // The dispatch's own delivery sends what the dispatch knew; one from the queue may run long
    // after, so it takes the request as of a moment ago (an update or a recall since).
    const content =
      initial === undefined
        ? await this.contents.get(this.requestOf(work))
        : await this.contents.fresh(this.requestOf(work), { maxAgeMs: this.contentMaxAgeMs });
    // No message stored is a work item without its request; a recalled one is never sent.
    if (content === undefined || content.recalled) {
      const lastError =
        content === undefined ? `request ${work.requestId} has no stored message` : undefined;
      const state = content === undefined ? "failed" : "cancelled";
      return this.deps.recorder.finish(await row(), state, log, { lastError }, work);
    }

    const user = await resolveUser(this.deps.users, work, info);
    if (user !== undefined) return this.sendTo(work, key, initial, user, content, info, log);
    const installer = this.deps.installer;
    if (installer !== undefined)
      return this.installThenSend(installer, work, key, await row(), content, info, log);
    return this.deps.recorder.finish(
      await row(),
      "unreachable",
      log,
      {
        lastError: `no user reference for ${recipientParts(work.recipient).kind} in tenant ${work.tenantId}: the user has not installed the bot or been seen in a team with it (ProactiveInstall is off: Herald does not install the app for users it has not seen)`,
      },
      work,
    );
  }

  /**
   * A recipient Herald has never seen: one step of the proactive install, then the send once
   * the 1:1 chat is known; waits and retries are scheduled work items.
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
      case "final":
        return this.deps.recorder.finish(
          step.row,
          step.state,
          log,
          { lastError: step.reason },
          work,
        );
      case "same-person":
        return this.deps.recorder.samePerson(step.row, step.of, log, {}, work);
      case "later": {
        const next = withoutInstallSlot(work);
        const deferred = await this.deps.recorder.defer(
          step.installSlotAt === undefined
            ? next
            : { ...next, installSlotAt: step.installSlotAt.toISOString() },
          step.at,
          log,
          "Proactive install: checking again later",
          { step: step.row.state, reason: step.reason },
        );
        // A retry's error and time are history once the step moved on: the status shows the wait.
        if (step.row.nextAttemptAt !== undefined)
          await this.deps.ledger.update(step.row, {
            lastError: undefined,
            nextAttemptAt: undefined,
          });
        return deferred;
      }
      case "decided":
        return this.deps.recorder.apply(step.row, step.decision, log, {
          // Graph's calls count as attempts here: "gave up after N attempts" matches the row.
          patch: { attempts: step.row.attempts + 1 },
          // A retry waits for a fresh install slot: the reserved one was used by the failed call.
          next: withoutInstallSlot(work),
          retryMessage: "Proactive install: Graph or Teams failed for now; retry scheduled",
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
    if (user.status === "uninstalled" || user.status === "unreachable") {
      const row =
        initial ?? (await this.deps.ledger.ensure(this.requestOf(work), key, work.recipient));
      return this.deps.recorder.finish(
        row,
        "unreachable",
        log,
        {
          teamsUserId: user.teamsUserId,
          lastError: `user reference is ${user.status}${user.statusReason !== undefined ? ` (${user.statusReason})` : ""}`,
        },
        work,
      );
    }
    // Load the connector before taking a pacing slot, so the load does not sit between the slot
    // and the call and bunch the first calls together.
    this.deps.operations.warm();
    const slot = await this.deps.work.slot(work.tenantId, user.conversationId);
    if (slot.kind === "later") {
      metric(log, "notifications.deferred");
      return this.deps.recorder.defer(work, slot.at, log, "Paced: delivery deferred");
    }
    const buttons = hasClickActions(content.message.adaptiveCard);
    const claimed = await this.claim(work, key, initial, user, info, log, { buttons });
    if (claimed.kind === "settled") return claimed.result;
    const activity = sentActivity(content, claimed.row, { buttons, revision: content.revision });
    const sent = await this.deps.operations.send(work.tenantId, user, activity, log);
    const result = await this.record(work, claimed.row, sent, content.revision, log);
    const queue = this.deps.queue;
    if (sent.kind === "sent" && queue !== undefined)
      await followChange(queue, this.contents.peek(this.requestOf(work)), work, content.revision);
    return result;
  }

  /**
   * The row claimed for this invocation, or how the delivery settles without a send. A lost race
   * decides from the row that won it: final is final, a standing claim is looked at again later,
   * and anything else (a claim whose holder is known gone, an expired claim, a write that was no
   * claim) is claimed at once.
   */
  private async claim(
    work: DeliveryWork,
    key: string,
    initial: Delivery | undefined,
    user: UserReference,
    info: QueueMessageInfo,
    log: Logger,
    options: { readonly buttons: boolean },
  ): Promise<{ kind: "claimed"; row: Delivery } | { kind: "settled"; result: DeliveryResult }> {
    const request = this.requestOf(work);
    const base = this.deps.claims.claimFor(info, user.teamsUserId);
    const guard = { guard: work.sole !== true && work.distinctPeople !== true }; // see work-items.ts
    let current = initial;
    for (let round = 0; round < MAX_CLAIM_ROUNDS; round++) {
      const claim = withCardToken(base, current, options);
      const claimed =
        current === undefined
          ? await this.deps.ledger.createClaimed(request, key, work.recipient, claim, guard)
          : await this.deps.ledger.claim(current, claim, guard);
      if (claimed.kind === "written") return { kind: "claimed", row: claimed.row };
      if (claimed.kind === "guard-taken") {
        const row = current ?? (await this.deps.ledger.ensure(request, key, work.recipient));
        const result = await this.deps.recorder.samePerson(
          row,
          claimed.by,
          log,
          { teamsUserId: user.teamsUserId },
          work,
        );
        return { kind: "settled", result };
      }
      // `exists`: a copy of this inline delivery wrote the row first; `conflict`: someone wrote it.
      const latest = await this.deps.ledger.ensure(request, key, work.recipient);
      if (FINAL_STATES.has(latest.state)) {
        metric(log, "notifications.duplicate");
        return { kind: "settled", result: { kind: "duplicate", state: latest.state } };
      }
      // `exists` (or a conflict on the row as written) is this invocation's first sight of it.
      const race = claimed.kind === "conflict" && (round > 0 || !startsUnread(work, info));
      const sighting = race ? "lost-race" : "read";
      const standing = this.deps.claims.standing(latest, info, sighting);
      if (standing.kind === "held") {
        const result = await this.deps.recorder.defer(
          work,
          standing.recheckAt,
          log,
          "Lost the claim race for this delivery; checking again later",
          { claimedBy: latest.claimedBy, claimExpiresAt: standing.until.toISOString() },
        );
        return { kind: "settled", result };
      }
      current = latest;
    }
    const at = new Date(this.deps.clock().getTime() + CLAIM_RACE_RECHECK_MS);
    const result = await this.deps.recorder.defer(
      work,
      at,
      log,
      "Claim kept racing; checking again shortly",
    );
    return { kind: "settled", result };
  }

  /** A send's outcome on the row: `sent`, or what the policy decides for Teams' answer. */
  private async record(
    work: DeliveryWork,
    entry: Delivery,
    sent: SendOutcome,
    revision: number,
    log: Logger,
  ): Promise<DeliveryResult> {
    if (sent.kind === "sent") {
      // The user's unread index (read receipts) beside the outcome, not after it.
      const [result] = await Promise.all([
        this.deps.recorder.finish(
          entry,
          "sent",
          log,
          {
            activityId: sent.activityId,
            conversationId: sent.conversationId,
            revision,
            lastError: undefined,
            lastStatus: undefined,
          },
          work,
        ),
        this.events.noteUnread(entry, sent.activityId),
      ]);
      return result;
    }
    const decision = decide({ source: "teams", failure: sent }, work.attempt, this.deps.policy);
    if (decision.kind === "retry" && decision.throttled) {
      this.deps.work.throttled(work.tenantId, sent.conversationId, decision.retryAfterMs);
      metric(log, "notifications.throttled");
    }
    return this.deps.recorder.apply(entry, decision, log, {
      patch: { lastStatus: sent.status, conversationId: sent.conversationId },
      retryPatch: {
        state: "pending",
        claimedBy: undefined,
        claimHolder: undefined,
        claimSession: undefined,
        claimExpiresAt: undefined,
      },
      next: work,
      retryMessage: "Transient failure; retry scheduled",
      properties: {
        status: sent.status,
        code: sent.code,
        retryAfterMs: decision.kind === "retry" ? decision.retryAfterMs : undefined,
      },
    });
  }

  private requestOf(work: DeliveryWork): RequestKey {
    return { tenantId: work.tenantId, id: work.requestId };
  }
}
