import { createHash, randomUUID } from "node:crypto";

import { z } from "zod";

import { type OutgoingMessage, WORK_KIND_PROPERTY } from "../queue/queue-port";
import { recipientKey } from "./recipients";
import { type Recipient, recipientSchema } from "./schema";

/**
 * Work kinds on the notifications queue (application property `heraldKind`). A message
 * without one is a LOB notification request.
 */
export const WORK_KINDS = {
  delivery: "delivery",
  rosterSync: "roster-sync",
  /** A welcome's lease check (shared/bot/welcome-check.ts). */
  welcomeCheck: "welcome-check",
} as const;

/** One recipient of one request: a fanned-out share of a request, or a scheduled retry. */
export const deliveryWorkSchema = z.object({
  requestId: z.string().min(1).max(128),
  tenantId: z.string().min(1),
  recipient: recipientSchema,
  /** 1 for the first try; a retry carries the attempt it is. */
  attempt: z.number().int().min(1),
  correlationId: z.string().max(128).optional(),
});

export type DeliveryWork = z.infer<typeof deliveryWorkSchema>;

/** What the trigger tells about the message being processed. */
export interface QueueMessageInfo {
  readonly messageId: string;
  /** 1 on the first delivery. */
  readonly deliveryCount: number;
  readonly correlationId?: string | undefined;
  readonly applicationProperties: Readonly<Record<string, unknown>>;
}

function shortHash(...parts: readonly (string | number)[]): string {
  return createHash("sha256").update(parts.join("\u0000")).digest("base64url").slice(0, 32);
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
  const key = recipientKey(work.recipient);
  const messageId =
    options.unique === true
      ? `d-${shortHash(work.requestId, key, work.attempt, randomUUID())}`
      : `d-${shortHash(work.requestId, key, work.attempt)}`;
  return {
    body: work,
    messageId,
    ...(work.correlationId !== undefined ? { correlationId: work.correlationId } : {}),
    applicationProperties: {
      [WORK_KIND_PROPERTY]: WORK_KINDS.delivery,
      requestId: work.requestId,
      attempt: work.attempt,
    },
  };
}

/** A LOB request put back on the queue until its `notBefore` (a new id: see duplicate detection). */
export function scheduledRequestMessage(
  body: unknown,
  requestId: string,
  correlationId: string | undefined,
): OutgoingMessage {
  return {
    body,
    messageId: `r-${shortHash(requestId, "notBefore")}`,
    ...(correlationId !== undefined ? { correlationId } : {}),
    applicationProperties: { requestId },
  };
}

export function deliveryWork(
  requestId: string,
  tenantId: string,
  recipient: Recipient,
  attempt: number,
  correlationId: string | undefined,
): DeliveryWork {
  return {
    requestId,
    tenantId,
    recipient,
    attempt,
    ...(correlationId !== undefined ? { correlationId } : {}),
  };
}
