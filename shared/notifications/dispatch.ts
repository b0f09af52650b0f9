import { z } from "zod";

import { toError } from "../errors";
import { newRowEvents } from "../events/event-factory";
import type { Logger } from "../logging";
import { namesDistinctPeople } from "../model/recipient";
import type { QueuePort } from "../queue/queue-port";
import { type Delivery, type DeliveryLedger, type NewDelivery } from "../store/delivery-ledger";
import { withoutUndefined } from "../store/entities";
import type { NotificationRequestStore, RequestKey } from "../store/notification-requests";
import type { TeamStore } from "../store/teams";
import type { CompletionChecker } from "./completion-check";
import type { DeliveryResult, DeliveryService } from "./delivery";
import type { EventOutbox } from "./event-outbox";
import type { GroupDirectory } from "./group-directory";
import { expandGroup, type PersonName } from "./group-expansion";
import { metric } from "./metrics";
import { type DispatchContent, dispatchRecalled, mayHaveChanged } from "./recalled-dispatch";
import { recipientKey, splitRecipients } from "./recipients";
import type { RetryPolicy } from "./retry-policy";
import type { Recipient } from "./schema";
import {
  deliveryMessage,
  deliveryWork,
  dispatchMessage,
  type DispatchWork,
  type QueueMessageInfo,
} from "./work-items";

/** The roster operations fan-out needs (the bot endpoint's TeamStore implements them). */
export type TeamDirectory = Pick<TeamStore, "get" | "listMemberIds">;

export interface DispatcherDependencies {
  readonly requests: NotificationRequestStore;
  readonly ledger: DeliveryLedger;
  readonly teams: TeamDirectory;
  readonly delivery: DeliveryService;
  readonly outbox: EventOutbox;
  /** Writes the request's `completed` once its fanned-out recipients are final. */
  readonly completion: Pick<CompletionChecker, "schedule">;
  /** The internal work queue. */
  readonly queue: () => QueuePort;
  /** The queue's max delivery count: the delivery after which the broker dead-letters. */
  readonly maxDeliveryCount?: number;
  readonly clock?: () => Date;
  /** Enqueue batch size handed to the queue port (it splits further by broker batch size). */
  readonly enqueueChunk?: number;
  /** Entra groups (Microsoft Graph); without it a group recipient is unreachable with why. */
  readonly groups?: GroupDirectory;
  /**
   * What a failed Graph call of a group expansion means (the attempt budget of a dispatch whose
   * Graph calls failed for now, before its groups end `failed`); default 6 attempts.
   */
  readonly policy?: RetryPolicy;
}

export type DispatchResult =
  | { readonly kind: "dropped"; readonly reason: string }
  | { readonly kind: "scheduled"; readonly at: Date }
  | { readonly kind: "duplicate" }
  | { readonly kind: "delivered-inline"; readonly delivery: DeliveryResult }
  /** The request was recalled before its dispatch ran: nothing sent. */
  | { readonly kind: "recalled"; readonly cancelled: number }
  | { readonly kind: "fanned-out"; readonly recipients: number; readonly enqueued: number };

/** How early a message may arrive before `notBefore` and still count as due (clock skew). */
const NOT_BEFORE_TOLERANCE_MS = 1_000;

/** The stored body of a request (the claim check): its recipients, as the schema parsed them. */
const storedBodySchema = z.object({
  recipients: z.array(z.unknown()).min(1),
  includeGuests: z.boolean().optional(),
});

/**
 * Runs a `dispatch` work item, the reference the intake queued for a stored request, in the
 * tenant's session: wait for `notBefore` (scheduled again if it came early), then deliver a
 * single recipient inline or split the request into per-recipient delivery work items: every
 * recipient (team rosters expanded) gets its ledger row, written in transactions of 100, and
 * its work item, sent in broker batches, all in this one invocation.
 *
 * Idempotent: a redelivered or duplicate dispatch finds its ledger rows and re-enqueues only
 * the ones still `pending` (the broker's duplicate detection drops copies of work items with
 * the same derived message id; the delivery itself ignores final rows).
 */
export class Dispatcher {
  private readonly clock: () => Date;
  private readonly enqueueChunk: number;
  private readonly policy: RetryPolicy;

  constructor(private readonly deps: DispatcherDependencies) {
    this.clock = deps.clock ?? (() => new Date());
    this.enqueueChunk = deps.enqueueChunk ?? 2_000;
    this.policy = deps.policy ?? { maxAttempts: 6, random: Math.random };
  }

  async handle(work: DispatchWork, info: QueueMessageInfo, log: Logger): Promise<DispatchResult> {
    const requestLog = log.with({ requestId: work.requestId, correlationId: work.correlationId });
    try {
      return await this.process(work, info, requestLog);
    } catch (error) {
      const message = toError(error).message.slice(0, 500);
      const last = this.isLastDelivery(info);
      requestLog.error(
        last
          ? "Request failed unexpectedly on its last delivery; the message goes to the dead-letter queue"
          : "Request failed unexpectedly; the message will be redelivered",
        { error: message, deliveryCount: info.deliveryCount },
      );
      await this.noteError(
        { tenantId: work.tenantId, id: work.requestId },
        last ? `${message} (delivery ${info.deliveryCount}, the last: dead-lettered)` : message,
        info.deliveryCount,
      );
      throw error;
    }
  }

  private async process(
    work: DispatchWork,
    info: QueueMessageInfo,
    log: Logger,
  ): Promise<DispatchResult> {
    const key = { tenantId: work.tenantId, id: work.requestId };
    const request = await this.content(work, log);
    if (typeof request === "string") return { kind: "dropped", reason: request };
    if (request.recalled) return dispatchRecalled(this.deps, work, request.recipients, log);

    if (request.notBefore !== undefined) {
      const due = Date.parse(request.notBefore);
      if (due - this.clock().getTime() > NOT_BEFORE_TOLERANCE_MS) {
        const at = new Date(due);
        await this.deps.queue().schedule(dispatchMessage(work, { unique: true }), at);
        log.info("Dispatch came before the request's notBefore; scheduled again", {
          notBefore: request.notBefore,
        });
        return { kind: "scheduled", at };
      }
    }

    // The delivery needs the request's message: hand it what this dispatch knows (read from
    // the store just now, or carried since intake: then a later revision kept wins).
    this.deps.delivery.remember(
      key,
      {
        message: request.message,
        summary: request.summary,
        revision: request.revision ?? 1,
        recalled: false,
      },
      request.readAt,
    );
    // One bad recipient is rejected with its reason; the others are still delivered.
    const { deliverable: explicit, rejected } = splitRecipients(request.recipients);
    const refused: NewDelivery[] = rejected.flatMap((r) =>
      r.recipient === undefined
        ? []
        : [
            {
              recipientKey: r.recipientKey,
              recipient: r.recipient,
              state: "rejected" as const,
              lastError: r.reason,
            },
          ],
    );
    if (rejected.length > 0)
      log.warn("Recipients rejected at dispatch", { rejected: rejected.length });
    const [only] = explicit.values();
    if (
      explicit.size === 1 &&
      refused.length === 0 &&
      only !== undefined &&
      only.teamId === undefined &&
      only.groupId === undefined
    ) {
      // The request's row already counts its one recipient (intake): nothing to write here.
      const delivery = await this.deps.delivery.deliver(
        deliveryWork(work.requestId, work.tenantId, only, 1, work.correlationId, { sole: true }),
        info,
        log,
        { from: "dispatch" },
      );
      return { kind: "delivered-inline", delivery };
    }
    return this.fanOut(work, explicit, info, log, refused, request.includeGuests === true);
  }

  /**
   * The request's content: carried in the work item when small, else read from the store (the
   * claim check). A string says why the dispatch is dropped.
   */
  private async content(work: DispatchWork, log: Logger): Promise<DispatchContent | string> {
    // A request that may have changed since intake is read back: a scheduled one (moved,
    // updated or recalled while it waited) and a fan-out (one read for all its recipients).
    // Only a single recipient sent at once goes on what its dispatch carries (the steady path).
    if (work.request !== undefined && !mayHaveChanged(work.request))
      return { ...work.request, recalled: false };
    const stored = await this.deps.requests.get({ tenantId: work.tenantId, id: work.requestId });
    if (stored === undefined) {
      // An HTTP intake's check sends its dispatch even when the intake failed before storing
      // the request (the caller got a 500 and nothing was stored); otherwise a stale item.
      log.warn("Dispatch of a request that is not stored for this tenant; dropped");
      return "request not stored";
    }
    if (stored.state === "rejected") {
      log.warn("Dispatch of a rejected request; dropped");
      return "request rejected";
    }
    // The recipients never change: what the dispatch carries needs no body read.
    const body =
      work.request !== undefined
        ? { success: true as const, data: work.request }
        : storedBodySchema.safeParse(await this.deps.requests.readBody(stored));
    if (!body.success || stored.message === undefined) {
      log.error("Stored request has no readable body; dropped");
      return "no stored body";
    }
    return withoutUndefined({
      message: stored.message,
      summary: stored.summary,
      notBefore: stored.notBefore,
      recipients: body.data.recipients,
      includeGuests: body.data.includeGuests,
      revision: stored.revision,
      recalled: stored.recalledAt !== undefined,
      readAt: this.clock().getTime(),
    });
  }

  private async fanOut(
    dispatch: DispatchWork,
    explicit: Map<string, Recipient>,
    info: QueueMessageInfo,
    log: Logger,
    refused: readonly NewDelivery[],
    includeGuests: boolean,
  ): Promise<DispatchResult> {
    const key = { tenantId: dispatch.tenantId, id: dispatch.requestId };
    const request = { ...key, correlationId: dispatch.correlationId };
    const targets = new Map<string, Recipient>();
    const names = new Map<string, PersonName>();
    const unreachable: NewDelivery[] = [...refused];
    for (const [key, recipient] of explicit) {
      if (recipient.groupId !== undefined) {
        const expanded = await expandGroup(
          {
            groups: this.deps.groups,
            queue: this.deps.queue,
            policy: this.policy,
            clock: this.clock,
          },
          { dispatch, key, recipient, includeGuests },
          targets,
          log,
        );
        if (expanded.kind === "later") return { kind: "scheduled", at: expanded.at };
        if (expanded.kind === "unreachable") unreachable.push(expanded.row);
        else for (const [key, name] of expanded.names) if (!names.has(key)) names.set(key, name);
        continue;
      }
      if (recipient.teamId === undefined) {
        targets.set(key, recipient);
        continue;
      }
      const team = await this.deps.teams.get(request.tenantId, recipient.teamId);
      if (team === undefined || team.status !== "active") {
        unreachable.push({
          recipientKey: key,
          recipient,
          state: "unreachable",
          lastError:
            team === undefined
              ? "team not known: the bot is not installed in this team (or its install was missed)"
              : `team is ${team.status}${team.statusReason !== undefined ? ` (${team.statusReason})` : ""}`,
        });
        continue;
      }
      let members = 0;
      for await (const teamsUserId of this.deps.teams.listMemberIds(
        request.tenantId,
        recipient.teamId,
      )) {
        const member: Recipient = { teamsUserId };
        const memberKey = recipientKey(member);
        if (!targets.has(memberKey)) targets.set(memberKey, member);
        members += 1;
      }
      if (members === 0) {
        unreachable.push({
          recipientKey: key,
          recipient,
          state: "unreachable",
          lastError: "team roster is empty: no members synced yet",
        });
      }
    }

    const existing = new Map<string, Delivery>();
    for await (const row of this.deps.ledger.list(key)) existing.set(row.recipientKey, row);

    const missing: NewDelivery[] = [];
    for (const [key, recipient] of targets)
      if (!existing.has(key)) missing.push({ recipientKey: key, recipient, ...names.get(key) });
    const finalNow = unreachable
      .filter((u) => !existing.has(u.recipientKey))
      .map((u) => this.withEvent(key, u, dispatch.correlationId));
    const { written } = await this.deps.ledger.createRows(key, [...missing, ...finalNow]);
    // Rows this dispatch made final report it; a redelivered dispatch reports them again (a
    // crash may have come between their write and this publish).
    const reported =
      info.deliveryCount > 1 ? unreachable.flatMap((u) => existing.get(u.recipientKey) ?? []) : [];
    for (const row of [...finalNow, ...reported])
      await this.deps.outbox.publish({
        tenantId: key.tenantId,
        requestId: key.id,
        recipientKey: row.recipientKey,
        events: row.events,
      });

    const distinctPeople = namesDistinctPeople(explicit.values());
    const work = [...targets]
      .filter(([key]) => {
        const state = existing.get(key)?.state;
        return state === undefined || state === "pending";
      })
      .map(([key, recipient]) =>
        deliveryMessage(
          deliveryWork(request.id, request.tenantId, recipient, 1, request.correlationId, {
            distinctPeople,
            written: written.get(key),
          }),
        ),
      );
    for (let i = 0; i < work.length; i += this.enqueueChunk)
      await this.deps.queue().enqueue(work.slice(i, i + this.enqueueChunk));

    const recipients = targets.size + unreachable.length;
    const stored = await this.deps.requests.get(key);
    if (stored !== undefined)
      await this.deps.requests.update(stored, { state: "dispatched", recipientCount: recipients });
    await this.deps.completion.schedule(request, work.length);
    log.info("Request fanned out", {
      recipients,
      enqueued: work.length,
      alreadyRecorded: existing.size,
      unreachableTeams: unreachable.length - refused.length,
      rejectedRecipients: refused.length,
    });
    metric(log, "notifications.fannedOut", work.length);
    const teamsUnreachable = unreachable.length - refused.length;
    if (teamsUnreachable > 0) metric(log, "notifications.unreachable", teamsUnreachable);
    if (refused.length > 0) metric(log, "notifications.rejected", refused.length);
    return { kind: "fanned-out", recipients, enqueued: work.length };
  }

  /** A row created final (unknown team, rejected recipient), with its state's event. */
  private withEvent(
    request: RequestKey,
    row: NewDelivery,
    correlationId: string | undefined,
  ): NewDelivery {
    const events = this.deps.outbox.record(() =>
      newRowEvents(request, row, { at: this.clock(), correlationId }),
    );
    return events.length === 0 ? row : { ...row, events };
  }

  private isLastDelivery(info: QueueMessageInfo): boolean {
    return (
      this.deps.maxDeliveryCount !== undefined && info.deliveryCount >= this.deps.maxDeliveryCount
    );
  }

  private async noteError(key: RequestKey, message: string, deliveryCount: number): Promise<void> {
    try {
      const stored = await this.deps.requests.get(key);
      if (stored !== undefined)
        await this.deps.requests.update(stored, {
          lastError: `unexpected: ${message}`,
          deliveryCount,
        });
    } catch {
      // The store is likely what failed; the broker's redelivery (and dead letter) remains.
    }
  }
}
