import { toError } from "../errors";
import type { Logger } from "../logging";
import type { QueuePort } from "../queue/queue-port";
import { type DeliveryLedger, FINAL_STATES, type NewDelivery } from "../store/delivery-ledger";
import type { NotificationRequestStore, StoredRequest } from "../store/notification-requests";
import type { TeamStore } from "../store/teams";
import type { DeliveryResult, DeliveryService } from "./delivery";
import { metric } from "./metrics";
import { recipientKey, uniqueRecipients } from "./recipients";
import {
  type FieldError,
  type NotificationRequest,
  parseNotificationRequest,
  type Recipient,
} from "./schema";
import {
  deliveryMessage,
  deliveryWork,
  type QueueMessageInfo,
  scheduledRequestMessage,
} from "./work-items";

/** The roster operations fan-out needs (the bot endpoint's TeamStore implements them). */
export type TeamDirectory = Pick<TeamStore, "get" | "listMemberIds">;

export interface RequestProcessorDependencies {
  readonly requests: NotificationRequestStore;
  readonly ledger: DeliveryLedger;
  readonly teams: TeamDirectory;
  readonly delivery: DeliveryService;
  readonly queue: () => QueuePort;
  /** The queue's max delivery count: the delivery after which the broker dead-letters. */
  readonly maxDeliveryCount?: number;
  readonly clock?: () => Date;
  /** Enqueue batch size handed to the queue port (it splits further by broker batch size). */
  readonly enqueueChunk?: number;
}

export type RequestResult =
  | { readonly outcome: "rejected"; readonly errors: readonly FieldError[] }
  | { readonly outcome: "scheduled"; readonly at: Date }
  | { readonly outcome: "duplicate" }
  | { readonly outcome: "delivered-inline"; readonly delivery: DeliveryResult }
  | { readonly outcome: "fanned-out"; readonly recipients: number; readonly enqueued: number };

/** How early a message may arrive before `notBefore` and still count as due (clock skew). */
const NOT_BEFORE_TOLERANCE_MS = 1_000;

/**
 * Handles a LOB notification request from the queue: validate (invalid -> `rejected`, recorded,
 * not retried), wait for `notBefore` (scheduled enqueue), store it, then deliver a single
 * recipient inline or split the request into per-recipient delivery work items: every
 * recipient (team rosters expanded) gets its ledger row, written in transactions of 100, and
 * its work item, sent in broker batches, all in this one invocation.
 *
 * Idempotent: a redelivered or duplicate request finds its ledger rows and re-enqueues only
 * the ones still `pending` (the broker's duplicate detection drops copies of work items with
 * the same derived message id; the delivery itself ignores final rows).
 */
export class RequestProcessor {
  private readonly clock: () => Date;
  private readonly enqueueChunk: number;

  constructor(private readonly deps: RequestProcessorDependencies) {
    this.clock = deps.clock ?? (() => new Date());
    this.enqueueChunk = deps.enqueueChunk ?? 2_000;
  }

  async handle(body: unknown, info: QueueMessageInfo, log: Logger): Promise<RequestResult> {
    const parsed = parseNotificationRequest(body);
    if (!parsed.ok) {
      const id = parsed.id ?? info.messageId;
      return this.reject(
        id,
        parsed.errors,
        parsed.correlationId,
        log.with({ requestId: id, correlationId: parsed.correlationId }),
      );
    }
    const request = parsed.request;
    const requestLog = log.with({ requestId: request.id, correlationId: request.correlationId });
    try {
      return await this.process(request, body, info, requestLog);
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
        request.id,
        last ? `${message} (delivery ${info.deliveryCount}, the last: dead-lettered)` : message,
        info.deliveryCount,
      );
      throw error;
    }
  }

  private async process(
    request: NotificationRequest,
    body: unknown,
    info: QueueMessageInfo,
    log: Logger,
  ): Promise<RequestResult> {
    const now = this.clock();
    const { request: stored } = await this.deps.requests.create({
      id: request.id,
      state: "queued",
      source: "queue",
      tenantId: request.tenantId,
      correlationId: request.correlationId,
      message: request.message,
      summary: request.summary,
      notBefore: request.notBefore,
    });
    if (stored.state === "dispatched") {
      log.info("Request already dispatched; nothing to do");
      metric(log, "notifications.duplicate");
      return { outcome: "duplicate" };
    }
    if (stored.state === "rejected") {
      log.warn("A request with this id was rejected before; ignoring this copy");
      return { outcome: "duplicate" };
    }

    if (request.notBefore !== undefined) {
      const due = Date.parse(request.notBefore);
      if (due - now.getTime() > NOT_BEFORE_TOLERANCE_MS) {
        const at = new Date(due);
        await this.deps
          .queue()
          .schedule(scheduledRequestMessage(body, request.id, request.correlationId), at);
        await this.deps.requests.update(stored, { state: "scheduled" });
        log.info("Request scheduled for its notBefore time", { notBefore: request.notBefore });
        return { outcome: "scheduled", at };
      }
    }

    const explicit = uniqueRecipients(request.recipients);
    const [only] = explicit.values();
    if (explicit.size === 1 && only !== undefined && only.teamId === undefined) {
      let delivery: DeliveryResult;
      try {
        delivery = await this.deps.delivery.deliver(
          deliveryWork(request.id, request.tenantId, only, 1, request.correlationId),
          info,
          log,
          { inline: true },
        );
      } catch (error) {
        // On the last delivery the recipient was recorded `failed` (see DeliveryService): the
        // request is then done too, so its status reads `completed` rather than in progress.
        if (this.isLastDelivery(info)) await this.dispatchedIfFinal(stored, request.id, only);
        throw error;
      }
      await this.deps.requests.update(stored, { state: "dispatched", recipientCount: 1 });
      return { outcome: "delivered-inline", delivery };
    }
    return this.fanOut(request, stored, explicit, log);
  }

  private async fanOut(
    request: NotificationRequest,
    stored: StoredRequest,
    explicit: Map<string, Recipient>,
    log: Logger,
  ): Promise<RequestResult> {
    const targets = new Map<string, Recipient>();
    const unreachable: NewDelivery[] = [];
    for (const [key, recipient] of explicit) {
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

    const existing = new Map<string, string>();
    for await (const row of this.deps.ledger.list(request.id))
      existing.set(row.recipientKey, row.state);

    const missing: NewDelivery[] = [];
    for (const [key, recipient] of targets)
      if (!existing.has(key)) missing.push({ recipientKey: key, recipient });
    await this.deps.ledger.create(request.id, [
      ...missing,
      ...unreachable.filter((u) => !existing.has(u.recipientKey)),
    ]);

    const work = [...targets]
      .filter(([key]) => {
        const state = existing.get(key);
        return state === undefined || state === "pending";
      })
      .map(([, recipient]) =>
        deliveryMessage(
          deliveryWork(request.id, request.tenantId, recipient, 1, request.correlationId),
        ),
      );
    for (let i = 0; i < work.length; i += this.enqueueChunk)
      await this.deps.queue().enqueue(work.slice(i, i + this.enqueueChunk));

    const recipients = targets.size + unreachable.length;
    await this.deps.requests.update(stored, { state: "dispatched", recipientCount: recipients });
    log.info("Request fanned out", {
      recipients,
      enqueued: work.length,
      alreadyRecorded: existing.size,
      unreachableTeams: unreachable.length,
    });
    metric(log, "notifications.fannedOut", work.length);
    if (unreachable.length > 0) metric(log, "notifications.unreachable", unreachable.length);
    return { outcome: "fanned-out", recipients, enqueued: work.length };
  }

  private async reject(
    id: string,
    errors: readonly FieldError[],
    correlationId: string | undefined,
    log: Logger,
  ): Promise<RequestResult> {
    const { created, request } = await this.deps.requests.create({
      id,
      state: "rejected",
      source: "queue",
      correlationId,
      errors,
    });
    if (!created && request.state !== "rejected") {
      // A valid request owns this id already; this invalid copy must not overwrite it.
      log.error("Invalid request reuses the id of an accepted request; dropped", {
        errors: summarizeErrors(errors),
      });
    } else {
      log.warn("Request rejected", { errors: summarizeErrors(errors) });
      if (created) metric(log, "notifications.rejected");
    }
    return { outcome: "rejected", errors };
  }

  private isLastDelivery(info: QueueMessageInfo): boolean {
    return (
      this.deps.maxDeliveryCount !== undefined && info.deliveryCount >= this.deps.maxDeliveryCount
    );
  }

  private async dispatchedIfFinal(
    stored: StoredRequest,
    requestId: string,
    recipient: Recipient,
  ): Promise<void> {
    try {
      const row = await this.deps.ledger.get(requestId, recipientKey(recipient));
      if (row === undefined || !FINAL_STATES.has(row.state)) return;
      await this.deps.requests.update(stored, { state: "dispatched", recipientCount: 1 });
    } catch {
      // The store is likely what failed; the dead-letter queue is the record now.
    }
  }

  private async noteError(id: string, message: string, deliveryCount: number): Promise<void> {
    try {
      const stored = await this.deps.requests.get(id);
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

/** Field errors for a log line: paths and reasons, never the offending values. */
export function summarizeErrors(errors: readonly FieldError[]): string {
  return errors
    .slice(0, 10)
    .map((e) => `${e.path}: ${e.message}`)
    .join("; ");
}
