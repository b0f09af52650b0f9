import type { InvocationContext } from "@azure/functions";

import { contextLogger, type Logger } from "../logging";
import { WORK_KIND_PROPERTY } from "../queue/queue-port";
import type { DeadLetterRecorder } from "./dead-letter-recorder";
import { type QueueMessageInfo, sessionFor, type WorkKind } from "./work-items";

/** Handles one kind of work item. Throwing = let the broker redeliver. */
export type WorkHandler = (body: unknown, info: QueueMessageInfo, log: Logger) => Promise<unknown>;

/** The work queue's dispatch table, one handler per kind (see WORK_KINDS in work-items.ts). */
export type WorkHandlers = Readonly<Record<WorkKind, WorkHandler>>;

/** What the Service Bus trigger put in `context.triggerMetadata` (camel-cased by the worker). */
export function queueMessageInfo(context: InvocationContext): QueueMessageInfo {
  const meta = (context.triggerMetadata ?? {}) as Record<string, unknown>;
  const properties = meta.applicationProperties ?? meta.userProperties;
  const count = Number(meta.deliveryCount);
  return {
    messageId:
      typeof meta.messageId === "string" && meta.messageId !== ""
        ? meta.messageId
        : context.invocationId,
    deliveryCount: Number.isInteger(count) && count > 0 ? count : 1,
    correlationId:
      typeof meta.correlationId === "string" && meta.correlationId !== ""
        ? meta.correlationId
        : undefined,
    sessionId:
      typeof meta.sessionId === "string" && meta.sessionId !== "" ? meta.sessionId : undefined,
    applicationProperties:
      typeof properties === "object" && properties !== null
        ? (properties as Record<string, unknown>)
        : {},
  };
}

/**
 * The message body as the host hands it over: already-parsed JSON, a string, or bytes. JSON
 * text is parsed; anything else is passed on for the schema to reject with a reason.
 */
export function decodeBody(message: unknown): unknown {
  let text: string | undefined;
  if (typeof message === "string") text = message;
  else if (message instanceof Uint8Array) text = Buffer.from(message).toString("utf8");
  if (text === undefined) return message;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The intake queue trigger: every message is a LOB notification request (or refused as one). */
export function createIntakeQueueHandler(
  intake: () => { fromQueue(body: unknown, info: QueueMessageInfo, log: Logger): Promise<unknown> },
): (message: unknown, context: InvocationContext) => Promise<void> {
  return async (message, context) => {
    const info = queueMessageInfo(context);
    const log = contextLogger(context, {
      messageId: info.messageId,
      deliveryCount: info.deliveryCount,
    });
    await intake().fromQueue(decodeBody(message), info, log);
  };
}

function tenantOf(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const tenant = (body as { tenantId?: unknown }).tenantId;
  return typeof tenant === "string" ? tenant : undefined;
}

/**
 * The work queue trigger (session-enabled): dispatch by `heraldKind`. Only Herald sends here,
 * so a body whose tenant is not its session's is a bug: logged and dropped, never run in
 * another tenant's session (whose pacer it would bypass).
 */
export function createWorkQueueHandler(
  handlers: () => WorkHandlers,
): (message: unknown, context: InvocationContext) => Promise<void> {
  return async (message, context) => {
    const info = queueMessageInfo(context);
    const rawKind = info.applicationProperties[WORK_KIND_PROPERTY];
    const kind = typeof rawKind === "string" ? rawKind : "";
    const log = contextLogger(context, {
      messageId: info.messageId,
      deliveryCount: info.deliveryCount,
      heraldKind: kind,
    });
    const table = handlers() as Readonly<Record<string, WorkHandler | undefined>>;
    const handler = Object.hasOwn(table, kind) ? table[kind] : undefined;
    if (handler === undefined) {
      // A producer newer than this code: let it come back (and dead-letter) rather than drop it.
      log.error(
        `Unknown ${WORK_KIND_PROPERTY} "${kind.slice(0, 40)}"; leaving the message to redelivery`,
      );
      throw new Error(`Unknown ${WORK_KIND_PROPERTY} "${kind.slice(0, 40)}"`);
    }
    const body = decodeBody(message);
    const tenant = tenantOf(body);
    if (
      info.sessionId !== undefined &&
      tenant !== undefined &&
      sessionFor(kind as WorkKind, tenant) !== info.sessionId
    ) {
      log.error("Work item's tenant is not its session's; dropped");
      return;
    }
    await handler(body, info, log);
  };
}

/**
 * A dead-letter subqueue's trigger (`<queue>/$DeadLetterQueue`; for the session-enabled work
 * queue too: its dead-letter subqueue is read without sessions). Records what the message means
 * and keeps it (DeadLetterRecorder); a failure to record is thrown, so the broker offers the
 * message again.
 */
export function createDeadLetterQueueHandler(
  recorder: () => DeadLetterRecorder,
  queue: { readonly kind: "intake" | "work"; readonly name: string },
): (message: unknown, context: InvocationContext) => Promise<void> {
  return async (message, context) => {
    const info = queueMessageInfo(context);
    const meta = (context.triggerMetadata ?? {}) as Record<string, unknown>;
    const sequence = meta.sequenceNumber ?? meta.enqueuedSequenceNumber;
    const log = contextLogger(context, { messageId: info.messageId, deadLetterQueue: queue.name });
    await recorder().record(
      queue,
      {
        ...info,
        body: decodeBody(message),
        ...(typeof sequence === "number" || typeof sequence === "string"
          ? { sequence: String(sequence) }
          : {}),
      },
      log,
    );
  };
}
