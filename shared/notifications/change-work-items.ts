import { randomUUID } from "node:crypto";

import { z } from "zod";

import type { OutgoingMessage } from "../queue/queue-port";
import { recipientKey } from "./recipients";
import { recipientSchema } from "./schema";
import { shortHash, WORK_KINDS, workMessage } from "./work-items";

/** Limits of the ids in the change work items (as for deliveries, work-items.ts). */
const tenantId = z.string().trim().min(1).max(256);

export const revisionWorkSchema = z.object({
  tenantId,
  requestId: z.string().min(1).max(128),
  operation: z.enum(["update", "recall"]),
  /** The request's revision when the operation was accepted. */
  revision: z.number().int().min(1),
  correlationId: z.string().max(128).optional(),
  /** 1 for the first pass; each later pass looks again at what was still under way. */
  round: z.number().int().min(1),
});
export type RevisionWork = z.infer<typeof revisionWorkSchema>;

export const copyWorkSchema = z.object({
  tenantId,
  requestId: z.string().min(1).max(128),
  recipient: recipientSchema,
  operation: z.enum(["update", "recall"]),
  /** Update: the copy moves to at least this revision (never back). */
  revision: z.number().int().min(1),
  attempt: z.number().int().min(1),
  correlationId: z.string().max(128).optional(),
  /** The replacement of a clicked copy: the verb whose answer it is to show (answered-copy.ts). */
  answer: z.string().min(1).max(64).optional(),
  /** One person's own update: the sequence of their override to show (copy-content.ts). */
  override: z.number().int().min(1).optional(),
});
export type CopyWork = z.infer<typeof copyWorkSchema>;

/**
 * A request's update or recall pass. One id per (request, operation, revision, round): a
 * redelivered acceptance, or a pass scheduled twice, collapses at the broker.
 */
export function revisionMessage(work: RevisionWork): OutgoingMessage {
  return workMessage(
    WORK_KINDS.revision,
    work.tenantId,
    work,
    `v-${shortHash(work.tenantId.toLowerCase(), work.requestId, work.operation, work.revision, work.round)}`,
    { correlationId: work.correlationId, properties: { requestId: work.requestId } },
  );
}

/**
 * One copy's change. Its id is derived from (request, recipient, operation, revision, attempt,
 * and a click's verb or an override's sequence), so passes that find the same copy still to
 * change queue it once, a click Teams redelivers queues one replacement, and so does a
 * per-recipient update retried; `unique` for a deferral.
 */
export function copyMessage(work: CopyWork, options: { unique?: boolean } = {}): OutgoingMessage {
  const key = recipientKey(work.recipient);
  const parts = [
    work.tenantId.toLowerCase(),
    work.requestId,
    key,
    work.operation,
    work.revision,
    work.attempt,
    ...(work.answer !== undefined ? ["answer", work.answer] : []),
    ...(work.override !== undefined ? ["override", work.override] : []),
  ];
  const messageId = `c-${shortHash(...parts, ...(options.unique === true ? [randomUUID()] : []))}`;
  return workMessage(WORK_KINDS.copy, work.tenantId, work, messageId, {
    correlationId: work.correlationId,
    properties: { requestId: work.requestId, attempt: work.attempt },
  });
}
