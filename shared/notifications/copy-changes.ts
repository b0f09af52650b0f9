import type { ConnectorFailure, SentActivity } from "../connector/teams-connector";
import { type Logger, recipientToken } from "../logging";
import { hasClickActions, newCardToken } from "../model/card-actions";
import type { QueuePort } from "../queue/queue-port";
import type { Delivery, DeliveryLedger } from "../store/delivery-ledger";
import type { RecipientOverrideStore } from "../store/recipient-overrides";
import type { UserReference, UserReferenceStore } from "../store/user-references";
import { answerPending, copyActivity } from "./answered-copy";
import { copyMessage, type CopyWork } from "./change-work-items";
import { copyContent } from "./copy-content";
import type { CopyLedger, CopyWrite } from "./copy-ledger";
import { RELEASED } from "./copy-ledger";
import type { DeliveryClaims } from "./delivery-claims";
import { metric } from "./metrics";
import { recipientKey } from "./recipients";
import type { RequestContent, RequestContents } from "./request-contents";
import { decide, type RetryPolicy } from "./retry-policy";
import type { TeamsOperations } from "./teams-operations";
import type { TenantWorkRunner } from "./tenant-work";
import type { QueueMessageInfo } from "./work-items";

export interface CopyChangeDependencies {
  readonly ledger: Pick<DeliveryLedger, "get">;
  readonly copies: CopyLedger;
  readonly users: Pick<UserReferenceStore, "findByTeamsUserId" | "markStatus">;
  readonly contents: RequestContents;
  /** Per-recipient updates: one person's own content (copy-content.ts). */
  readonly overrides: Pick<RecipientOverrideStore, "get">;
  readonly work: TenantWorkRunner;
  readonly operations: TeamsOperations;
  readonly policy: RetryPolicy;
  readonly claims: DeliveryClaims;
  readonly queue: () => QueuePort;
  readonly clock: () => Date;
  /** How old the request's content may be when a copy is replaced with it. */
  readonly contentMaxAgeMs: number;
}

export type CopyChangeResult =
  | { readonly kind: "updated"; readonly revision: number }
  | { readonly kind: "recalled" }
  /** Nothing to do: the copy shows this revision or a later one, is gone, or was never sent. */
  | { readonly kind: "unchanged"; readonly reason: string }
  | { readonly kind: "retrying"; readonly at: Date }
  | { readonly kind: "deferred"; readonly at: Date }
  /** Teams refused the change for good (`unreachable`, or the error kept on the row). */
  | { readonly kind: "failed"; readonly reason: string };

/** Rounds of lost conditional writes before the change steps back for a moment. */
const MAX_ROUNDS = 3;
const RACE_RECHECK_MS = 1_000;

/**
 * One sent copy replaced in place (`PUT …/activities/{id}`) or deleted (`DELETE`), as paced
 * tenant work like a send: the tenant's and the chat's slot first, then a claim on the row
 * (ETag-conditional, so two changes of one copy never run at once), the call, and the outcome
 * written on the row by the copy ledger. A copy is never moved back: an update applies only
 * when the row's `revision` is below the content's, and writes that revision after Teams took
 * it. Teams' failures go through the one retry policy: 429/5xx are retried as scheduled work,
 * 403 makes the recipient `unreachable`, and 404 (the copy is gone) ends a recall as
 * `recalled` and makes an update send the latest afresh, once.
 */
export class CopyChanges {
  constructor(private readonly deps: CopyChangeDependencies) {}

  async change(work: CopyWork, info: QueueMessageInfo, log: Logger): Promise<CopyChangeResult> {
    const key = recipientKey(work.recipient);
    const request = { tenantId: work.tenantId, id: work.requestId };
    const copyLog = log.with({
      recipient: recipientToken(key),
      operation: work.operation,
      attempt: work.attempt,
    });
    let row = await this.deps.ledger.get(request, key);
    for (let round = 0; round < MAX_ROUNDS && row !== undefined; round++) {
      const content =
        work.operation === "update"
          ? await copyContent(
              this.deps.overrides,
              request,
              row,
              // At least what the copy shows: a copy never moves back.
              await this.deps.contents.fresh(request, {
                maxAgeMs: this.deps.contentMaxAgeMs,
                atLeast: Math.max(work.revision, row.revision ?? 1),
              }),
              work.override,
            )
          : undefined;
      const skip = this.skip(work, row, content);
      if (skip !== undefined) return { kind: "unchanged", reason: skip };
      const standing = this.deps.claims.standing(row, info);
      if (standing.kind === "held") return this.defer(work, standing.recheckAt, copyLog);
      const user =
        row.teamsUserId === undefined
          ? undefined
          : await this.deps.users.findByTeamsUserId(work.tenantId, row.teamsUserId);
      if (user === undefined || row.activityId === undefined || row.conversationId === undefined)
        return { kind: "unchanged", reason: "the copy's chat or user is not known" };
      this.deps.operations.warm();
      const slot = await this.deps.work.slot(work.tenantId, row.conversationId);
      if (slot.kind === "later") return this.defer(work, slot.at, copyLog);
      const claim = this.deps.claims.claimFor(info, user.teamsUserId);
      const held = await this.deps.copies.note(row, {
        ...(content !== undefined && hasClickActions(content.message.adaptiveCard)
          ? { cardToken: row.cardToken ?? newCardToken() }
          : {}),
        changing: work.operation,
        claimedBy: claim.claimedBy,
        claimHolder: claim.claimHolder,
        claimSession: claim.claimSession,
        claimExpiresAt: claim.claimExpiresAt,
        deliveryCount: claim.deliveryCount,
      });
      if (held.kind === "conflict") {
        row = await this.deps.ledger.get(request, key);
        continue;
      }
      const sent: SentActivity = {
        serviceUrl: user.serviceUrl,
        conversationId: row.conversationId,
        activityId: row.activityId,
      };
      return content === undefined
        ? this.remove(work, held.row, sent, copyLog)
        : this.replace(work, held.row, user, sent, content, copyLog);
    }
    if (row === undefined) return { kind: "unchanged", reason: "no delivery row" };
    return this.defer(work, new Date(this.deps.clock().getTime() + RACE_RECHECK_MS), copyLog);
  }

  /** Why this change has nothing to do, or undefined when it has. */
  private skip(
    work: CopyWork,
    row: Delivery,
    content: RequestContent | undefined,
  ): string | undefined {
    if (row.state !== "sent") return `the row is ${row.state}`;
    if (work.operation === "recall") return undefined;
    if (content === undefined) return "the request has no stored message";
    if (content.recalled) return "the request was recalled";
    if (
      (row.revision ?? 1) >= content.revision &&
      row.override === content.override &&
      !answerPending(row)
    )
      return `the copy shows revision ${row.revision ?? 1} already`;
    return undefined;
  }

  private async replace(
    work: CopyWork,
    row: Delivery,
    user: UserReference,
    sent: SentActivity,
    content: RequestContent,
    log: Logger,
  ): Promise<CopyChangeResult> {
    // The new content's buttons carry the row's token too (card-stamp.ts); a clicked copy
    // shows its answer (answered-copy.ts).
    const activity = copyActivity(content, row, {
      buttons: hasClickActions(content.message.adaptiveCard),
      revision: content.revision,
    });
    const result = await this.deps.operations.updateActivity(work.tenantId, sent, activity);
    const shown = { answerShown: row.answer, override: content.override };
    if (result.kind === "updated") {
      // Only the click's answer is new (no newer revision or override): no `…delivery.updated`.
      const written =
        content.revision > (row.revision ?? 1) || content.override !== row.override
          ? this.deps.copies.updated(row, content.revision, work, shown)
          : this.deps.copies.note(row, { ...RELEASED, ...shown, lastError: undefined });
      await this.settle(written, row, log);
      log.info("Copy updated", { revision: content.revision });
      metric(log, "notifications.updated");
      return { kind: "updated", revision: content.revision };
    }
    if (result.kind !== "conversationGone") return this.failed(work, row, result, log);
    if (row.resent === true) {
      await this.settle(
        this.deps.copies.note(row, { ...RELEASED, lastError: "the copy is gone (404) again" }),
        row,
        log,
      );
      return { kind: "failed", reason: "the copy is gone (404) and was sent afresh before" };
    }
    // The user deleted the message or the chat: the latest goes out as a new message, once.
    log.warn("The copy to update is gone (404); sending the latest afresh once", {
      code: result.code,
    });
    await this.deps.work.waitForSlot(work.tenantId, sent.conversationId);
    const fresh = await this.deps.operations.send(work.tenantId, user, activity, log);
    if (fresh.kind !== "sent") return this.failed(work, row, fresh, log);
    await this.settle(
      this.deps.copies.updated(row, content.revision, work, {
        ...shown,
        activityId: fresh.activityId,
        conversationId: fresh.conversationId,
        resent: true,
      }),
      row,
      log,
    );
    metric(log, "notifications.updated");
    return { kind: "updated", revision: content.revision };
  }

  private async remove(
    work: CopyWork,
    row: Delivery,
    sent: SentActivity,
    log: Logger,
  ): Promise<CopyChangeResult> {
    const result = await this.deps.operations.deleteActivity(work.tenantId, sent);
    if (result.kind === "deleted" || result.kind === "conversationGone") {
      await this.settle(this.deps.copies.recalled(row, work), row, log);
      log.info(
        result.kind === "deleted" ? "Copy deleted" : "Copy already gone (404); recorded recalled",
      );
      metric(log, "notifications.recalled");
      return { kind: "recalled" };
    }
    return this.failed(work, row, result, log);
  }

  /** Teams refused the change: what the retry policy decides, written on the row. */
  private async failed(
    work: CopyWork,
    row: Delivery,
    failure: ConnectorFailure,
    log: Logger,
  ): Promise<CopyChangeResult> {
    const decision = decide(
      { source: "teams", failure, context: `${work.operation} of the sent copy` },
      work.attempt,
      this.deps.policy,
    );
    const patch = { ...RELEASED, lastStatus: failure.status, lastError: decision.reason };
    switch (decision.kind) {
      case "retry": {
        if (decision.throttled) {
          this.deps.work.throttled(work.tenantId, row.conversationId, decision.retryAfterMs);
          metric(log, "notifications.throttled");
        }
        const at = new Date(this.deps.clock().getTime() + decision.delayMs);
        // Scheduled first: a crash before the note costs a repeated change, never a lost one.
        await this.deps.queue().schedule(copyMessage({ ...work, attempt: decision.attempt }), at);
        await this.settle(
          this.deps.copies.note(row, { ...patch, nextAttemptAt: at.toISOString() }),
          row,
          log,
        );
        log.warn("Copy change failed for now; retry scheduled", {
          status: failure.status,
          code: failure.code,
          at: at.toISOString(),
        });
        metric(log, "notifications.retried");
        return { kind: "retrying", at };
      }
      case "unreachable": {
        if (decision.userBlocked !== undefined && row.teamsUserId !== undefined)
          await this.deps.users.markStatus(
            row.tenantId,
            row.teamsUserId,
            "unreachable",
            decision.userBlocked.code,
          );
        await this.settle(this.deps.copies.ended(row, "unreachable", work, patch), row, log);
        log.warn("Copy change refused (403): recipient unreachable", { code: failure.code });
        metric(log, "notifications.unreachable");
        return { kind: "failed", reason: decision.reason };
      }
      case "rejected":
      case "failed": {
        // A recall that cannot delete the copy ends `failed`; an update leaves the copy as it is.
        const written =
          work.operation === "recall"
            ? this.deps.copies.ended(row, "failed", work, patch)
            : this.deps.copies.note(row, patch);
        await this.settle(written, row, log);
        log.warn("Copy change failed", { status: failure.status, code: failure.code });
        metric(log, "notifications.failed");
        return { kind: "failed", reason: decision.reason };
      }
    }
  }

  /**
   * The outcome's write. It is conditional on the claim this change wrote, which nothing else
   * takes while it stands; a conflict means the claim was taken over (it expired): the change
   * that took it over writes its own outcome.
   */
  private async settle(write: Promise<CopyWrite>, row: Delivery, log: Logger): Promise<void> {
    const written = await write;
    if (written.kind === "conflict")
      log.warn("The copy's row changed during its change; the later change records it", {
        state: row.state,
      });
  }

  private async defer(work: CopyWork, at: Date, log: Logger): Promise<CopyChangeResult> {
    await this.deps.queue().schedule(copyMessage(work, { unique: true }), at);
    log.info("Copy change deferred", { at: at.toISOString() });
    return { kind: "deferred", at };
  }
}
