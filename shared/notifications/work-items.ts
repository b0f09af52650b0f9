import { createHash, randomUUID } from "node:crypto";

import { z } from "zod";

import { type CloudEvent, isCloudEvent } from "../model/cloud-event";
import { type OutgoingMessage, WORK_KIND_PROPERTY } from "../queue/queue-port";
import { writtenRowSchema } from "../store/delivery-ledger";
import { recipientKey } from "./recipients";
import { messageSchema, type Recipient, recipientSchema } from "./schema";

/**
 * Kinds of work on Herald's internal work queue (application property `heraldKind`). Every
 * one that calls Teams runs in its tenant's session, so one instance at a time paces a tenant.
 */
export const WORK_KINDS = {
  /** Fan a stored request out to its recipients (the claim check's reference). */
  dispatch: "dispatch",
  /** One recipient of one request: a fanned-out share of a request, or a scheduled retry. */
  delivery: "delivery",
  rosterSync: "roster-sync",
  /** A personal or team welcome (and, for a personal message, the help reply). */
  welcome: "welcome",
  /** A welcome's lease check (shared/bot/welcome-check.ts). */
  welcomeCheck: "welcome-check",
  /** The @mention relay of one channel message. */
  relay: "relay",
  /**
   * A request's update or recall, brought to every recipient: sent copies get a `copy` item,
   * copies not yet sent are cancelled (recall) or get the latest when they go (update).
   */
  revision: "revision",
  /** One sent copy replaced (PUT) or deleted (DELETE). */
  copy: "copy",
  /** An HTTP intake's guard: the stored request's dispatch, sent again (see intake.ts). */
  intakeCheck: "intake-check",
  /** Whether a fanned-out request is final yet; writes and publishes its `completed` event. */
  completionCheck: "completion-check",
  /** A read receipt from a user's 1:1 chat: marks their deliveries read. */
  readReceipt: "read-receipt",
  /** One row's events POSTed to the webhook, in order (its own session: not the Teams pace). */
  webhook: "webhook",
} as const;

export type WorkKind = (typeof WORK_KINDS)[keyof typeof WORK_KINDS];

export const WORK_KIND_VALUES: readonly WorkKind[] = Object.values(WORK_KINDS);

/** Service Bus caps a session id at 128 characters; tenant ids are GUIDs (36). */
const MAX_SESSION_ID_LENGTH = 128;

const tenantId = z.string().trim().min(1).max(256);
const id = z.string().trim().min(1).max(1024);

/**
 * The session of a tenant's work: its id lower-cased (Teams and LOB apps spell GUIDs either
 * way), hashed in the rare case it is longer than a session id may be.
 */
export function sessionOf(tenant: string): string {
  const lower = tenant.trim().toLowerCase();
  return lower.length <= MAX_SESSION_ID_LENGTH ? lower : `t-${shortHash(lower)}`;
}

/**
 * The session a kind of work runs in: the tenant's, except webhook posts, which call no Teams
 * API and must not hold the tenant's calls while a slow receiver answers: a session of their
 * own per tenant (`~events` after the tenant's).
 */
export function sessionFor(kind: WorkKind, tenant: string): string {
  const session = sessionOf(tenant);
  return kind === WORK_KINDS.webhook
    ? `${session.slice(0, MAX_SESSION_ID_LENGTH - 7)}~events`
    : session;
}

/**
 * A small request's content, carried in its dispatch so the dispatch reads nothing back from
 * the store (the steady path's budget); a larger one is read from the store (the claim check).
 */
export const inlineRequestSchema = z.object({
  message: messageSchema,
  summary: z.string().optional(),
  notBefore: z.string().optional(),
  recipients: z.array(z.unknown()).min(1),
  includeGuests: z.boolean().optional(),
  /** The revision this content is (undefined: 1, as accepted). */
  revision: z.number().int().min(1).optional(),
});
export type InlineRequest = z.infer<typeof inlineRequestSchema>;

export const dispatchWorkSchema = z.object({
  tenantId,
  requestId: z.string().min(1).max(128),
  correlationId: z.string().max(128).optional(),
  request: inlineRequestSchema.optional(),
  /** A dispatch put back after Graph throttled or failed its group expansion: which try this is. */
  attempt: z.number().int().min(1).optional(),
});
export type DispatchWork = z.infer<typeof dispatchWorkSchema>;

export const deliveryWorkSchema = z.object({
  requestId: z.string().min(1).max(128),
  tenantId,
  recipient: recipientSchema,
  /** 1 for the first try; a retry carries the attempt it is. */
  attempt: z.number().int().min(1),
  correlationId: z.string().max(128).optional(),
  /** Proactive install: the Graph install slot this item was scheduled for (reserved already). */
  installSlotAt: z.iso.datetime().optional(),
  /**
   * The request's only recipient (delivered from its dispatch): its final write also records the
   * request's `completed` event.
   */
  sole: z.boolean().optional(),
  /**
   * No other recipient of the request can be this person (model/recipient.ts,
   * `namesDistinctPeople`): the claim is one conditional write, without the per-user guard.
   */
  distinctPeople: z.boolean().optional(),
  /** Its row as the fan-out wrote it (store/delivery-ledger.ts `WrittenRow`): no read first. */
  written: writtenRowSchema.optional(),
});
export type DeliveryWork = z.infer<typeof deliveryWorkSchema>;

/** A request the HTTP intake stored (or was about to store) whose dispatch must be on the queue. */
export const intakeCheckWorkSchema = z.object({
  tenantId,
  requestId: z.string().min(1).max(128),
  correlationId: z.string().max(128).optional(),
});
export type IntakeCheckWork = z.infer<typeof intakeCheckWorkSchema>;

/** Names the team; the service URL comes from the stored team reference, never from here. */
export const rosterSyncWorkSchema = z.object({
  tenantId,
  teamId: id,
  /**
   * When the sync was asked for: what it observes counts as of then, so a sync that runs late
   * never overwrites what a newer activity taught (a user's service URL, their name).
   */
  queuedAt: z.iso.datetime().optional(),
});
export type RosterSyncWork = z.infer<typeof rosterSyncWorkSchema>;

export const welcomeWorkSchema = z.discriminatedUnion("scope", [
  z.object({
    scope: z.literal("personal"),
    tenantId,
    teamsUserId: id,
    /** A message from the user: answer with the help text when no welcome goes out. */
    helpReply: z.boolean().optional(),
    /** A refused `Action.Submit` click: this short notice is the reply, not the help text. */
    notice: z.string().min(1).max(300).optional(),
  }),
  z.object({ scope: z.literal("team"), tenantId, teamId: id }),
]);
export type WelcomeWork = z.infer<typeof welcomeWorkSchema>;

export const relayWorkSchema = z.object({
  tenantId,
  /** The channel (or group chat) conversation the request came from, for the reply. */
  conversationId: id,
  /** The inbound activity: the reply threads under it; with the conversation, the relay's identity. */
  activityId: id,
  teamId: id.optional(),
  teamName: z.string().max(256).optional(),
  /** Who asked: their stored reference gives the service URL outside a known team. */
  fromTeamsUserId: id,
  fromName: z.string().max(256).optional(),
  /** The bot's Teams id as the inbound activity named it (`28:…`), for creating 1:1 chats. */
  botId: id,
  /** The message to pass on, mentions stripped; empty (or no targets): answer with usage. */
  text: z.string().max(28_000),
  targets: z.array(z.object({ id, name: z.string().max(256).optional() })).max(50),
});
export type RelayWork = z.infer<typeof relayWorkSchema>;

export const completionWorkSchema = z.object({
  tenantId,
  requestId: z.string().min(1).max(128),
  correlationId: z.string().max(128).optional(),
  /** Which look this is (1 after the fan-out); the next is scheduled later and later. */
  check: z.number().int().min(1),
  /** Recipients the previous look found pending: no progress since means a longer wait. */
  pending: z.number().int().min(0).optional(),
});
export type CompletionWork = z.infer<typeof completionWorkSchema>;

export const readReceiptWorkSchema = z.object({
  tenantId,
  teamsUserId: id,
  /** Teams' message ids in a 1:1 chat are numbers: every message up to this one is read. */
  lastReadMessageId: z.string().regex(/^\d{1,20}$/),
  /** When Teams sent the receipt. */
  readAt: z.iso.datetime(),
});
export type ReadReceiptWork = z.infer<typeof readReceiptWorkSchema>;

const cloudEventSchema = z.custom<CloudEvent>(isCloudEvent, "must be a CloudEvent");

/** The row whose events a webhook work item posts: a recipient's, or the request's own. */
export const REQUEST_STREAM = "~request";

export const webhookWorkSchema = z.object({
  tenantId,
  requestId: z.string().min(1).max(128),
  /** The recipient key of the ledger row, or `REQUEST_STREAM`. */
  stream: z.string().min(1).max(1024),
  /** The row's events in order; those already posted (the cursor) are skipped. */
  events: z.array(cloudEventSchema).min(1).max(200),
  attempt: z.number().int().min(1),
  /** Times a request's final event on this row waited for the request's `accepted`. */
  held: z.number().int().min(0).optional(),
});
export type WebhookWork = z.infer<typeof webhookWorkSchema>;

/** What the trigger tells about the message being processed. */
export interface QueueMessageInfo {
  readonly messageId: string;
  /** 1 on the first delivery. */
  readonly deliveryCount: number;
  readonly correlationId?: string | undefined;
  readonly sessionId?: string | undefined;
  readonly applicationProperties: Readonly<Record<string, unknown>>;
}

export function shortHash(...parts: readonly (string | number)[]): string {
  return createHash("sha256").update(parts.join("\u0000")).digest("base64url").slice(0, 32);
}

/** A work item on the tenant's session, with its kind and a message id for duplicate detection. */
export function workMessage(
  kind: WorkKind,
  tenant: string,
  body: unknown,
  messageId: string,
  extra: { correlationId?: string | undefined; properties?: Record<string, string | number> } = {},
): OutgoingMessage {
  return {
    body,
    messageId,
    sessionId: sessionFor(kind, tenant),
    ...(extra.correlationId !== undefined ? { correlationId: extra.correlationId } : {}),
    applicationProperties: { [WORK_KIND_PROPERTY]: kind, ...extra.properties },
  };
}

/**
 * A delivery work item as a queue message. The message id is derived from request, recipient
 * and attempt, so the broker's duplicate detection drops a second copy of the same attempt (a
 * fan-out redone after a crash); `unique` gives a fresh id (pacing deferrals, claim rechecks).
 */
export function deliveryMessage(
  work: DeliveryWork,
  options: { unique?: boolean } = {},
): OutgoingMessage {
  const parts = [work.tenantId, work.requestId, recipientKey(work.recipient), work.attempt];
  const messageId = `d-${shortHash(...parts, ...(options.unique === true ? [randomUUID()] : []))}`;
  return workMessage(WORK_KINDS.delivery, work.tenantId, work, messageId, {
    correlationId: work.correlationId,
    properties: { requestId: work.requestId, attempt: work.attempt },
  });
}

/**
 * The claim check of a stored request. One id per request, so a request accepted twice (a LOB
 * retry, an HTTP and a queue copy) is dispatched once; `unique` for a dispatch that came early
 * and is put back until its `notBefore`.
 */
export function dispatchMessage(
  work: DispatchWork,
  options: { unique?: boolean } = {},
): OutgoingMessage {
  const base = shortHash(work.tenantId.toLowerCase(), work.requestId);
  return workMessage(
    WORK_KINDS.dispatch,
    work.tenantId,
    work,
    options.unique === true ? `r-${shortHash(base, randomUUID())}` : `r-${base}`,
    { correlationId: work.correlationId, properties: { requestId: work.requestId } },
  );
}

/** One intake check per request (a replay's check is the first one's duplicate). */
export function intakeCheckMessage(work: IntakeCheckWork): OutgoingMessage {
  return workMessage(
    WORK_KINDS.intakeCheck,
    work.tenantId,
    work,
    `ic-${shortHash(work.tenantId.toLowerCase(), work.requestId)}`,
    { correlationId: work.correlationId, properties: { requestId: work.requestId } },
  );
}

/**
 * A team's roster sync. Teams sends two install events for one team install (installationUpdate
 * and conversationUpdate), close together: one id per team and ten-minute window makes the
 * broker keep one, while a re-install later still syncs again.
 */
export function rosterSyncMessage(work: RosterSyncWork, now: Date): OutgoingMessage {
  const window = Math.floor(now.getTime() / 600_000);
  return workMessage(
    WORK_KINDS.rosterSync,
    work.tenantId,
    { ...work, queuedAt: work.queuedAt ?? now.toISOString() },
    `rs-${shortHash(work.tenantId.toLowerCase(), work.teamId, window)}`,
  );
}

/**
 * A welcome. Install events name no message of their own that both copies share, so the id is
 * the welcome's subject (both copies collapse); a personal message's help reply is keyed by the
 * activity, so Teams redelivering it answers once.
 */
export function welcomeMessage(work: WelcomeWork, activityId?: string): OutgoingMessage {
  const subject = work.scope === "personal" ? work.teamsUserId : work.teamId;
  const key =
    work.scope === "personal" && work.helpReply === true
      ? shortHash(work.tenantId.toLowerCase(), subject, "message", activityId ?? randomUUID())
      : shortHash(work.tenantId.toLowerCase(), work.scope, subject);
  return workMessage(WORK_KINDS.welcome, work.tenantId, work, `w-${key}`);
}

/** One relay per inbound activity: Teams' redeliveries of it collapse at the broker. */
export function relayMessage(work: RelayWork): OutgoingMessage {
  return workMessage(
    WORK_KINDS.relay,
    work.tenantId,
    work,
    `m-${shortHash(work.tenantId.toLowerCase(), work.conversationId, work.activityId)}`,
  );
}

/**
 * A completion check. One id per request and look, so a redone fan-out schedules its first look
 * once; each look schedules the next.
 */
export function completionMessage(work: CompletionWork): OutgoingMessage {
  return workMessage(
    WORK_KINDS.completionCheck,
    work.tenantId,
    work,
    `cc-${shortHash(work.tenantId.toLowerCase(), work.requestId, work.check)}`,
    { correlationId: work.correlationId, properties: { requestId: work.requestId } },
  );
}

/** One per receipt: Teams redelivering the same receipt collapses at the broker. */
export function readReceiptMessage(work: ReadReceiptWork): OutgoingMessage {
  return workMessage(
    WORK_KINDS.readReceipt,
    work.tenantId,
    work,
    `rr-${shortHash(work.tenantId.toLowerCase(), work.teamsUserId, work.lastReadMessageId)}`,
  );
}

/**
 * A row's events for the webhook. The id is the row's and how many events it holds, so a
 * republish of the same events collapses at the broker; a retry (`unique`) is a new message.
 */
export function webhookMessage(
  work: WebhookWork,
  options: { unique?: boolean } = {},
): OutgoingMessage {
  const { tenantId, requestId, stream, events } = work;
  const base = shortHash(tenantId.toLowerCase(), requestId, stream, events.length);
  return workMessage(
    WORK_KINDS.webhook,
    work.tenantId,
    work,
    options.unique === true ? `wh-${shortHash(base, work.attempt, randomUUID())}` : `wh-${base}`,
    { properties: { requestId: work.requestId, attempt: work.attempt } },
  );
}

export function deliveryWork(
  requestId: string,
  tenant: string,
  recipient: Recipient,
  attempt: number,
  correlationId: string | undefined,
  options: Pick<DeliveryWork, "sole" | "distinctPeople" | "written"> = {},
): DeliveryWork {
  const { sole, distinctPeople, written } = options;
  return {
    requestId,
    tenantId: tenant,
    recipient,
    attempt,
    ...(correlationId !== undefined ? { correlationId } : {}),
    ...(sole === true ? { sole } : {}),
    ...(distinctPeople === true ? { distinctPeople } : {}),
    ...(written !== undefined ? { written } : {}),
  };
}
