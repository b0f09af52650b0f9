import type { InvocationContext } from "@azure/functions";

import { contextLogger, type Logger } from "../logging";
import { WORK_KIND_PROPERTY } from "../queue/queue-port";
import { type QueueMessageInfo, WORK_KINDS } from "./work-items";

/** Handles one kind of message on the notifications queue. Throwing = let the broker redeliver. */
export type WorkHandler = (body: unknown, info: QueueMessageInfo, log: Logger) => Promise<unknown>;

/**
 * The dispatch table of the notifications queue, by the `heraldKind` application property:
 * none = a LOB notification request; `delivery` = one recipient (fan-out share or retry);
 * `roster-sync` = the bot endpoint's team roster sync; `welcome-check` = a welcome's lease
 * check (sends a welcome whose sender died or failed).
 */
export interface WorkHandlers {
  readonly request: WorkHandler;
  readonly [WORK_KINDS.delivery]: WorkHandler;
  readonly [WORK_KINDS.rosterSync]: WorkHandler;
  readonly [WORK_KINDS.welcomeCheck]: WorkHandler;
}

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

/** The Service Bus trigger handler: decode, read the metadata, dispatch by kind. */
export function createNotificationsQueueHandler(
  handlers: () => WorkHandlers,
): (message: unknown, context: InvocationContext) => Promise<void> {
  return async (message, context) => {
    const info = queueMessageInfo(context);
    const rawKind = info.applicationProperties[WORK_KIND_PROPERTY];
    const kind = typeof rawKind === "string" && rawKind !== "" ? rawKind : "request";
    const log = contextLogger(context, {
      messageId: info.messageId,
      deliveryCount: info.deliveryCount,
      heraldKind: kind,
    });
    const table = handlers() as unknown as Readonly<Record<string, WorkHandler | undefined>>;
    const handler = Object.hasOwn(table, kind) ? table[kind] : undefined;
    if (handler === undefined) {
      // A producer newer than this code: let it come back (and dead-letter) rather than drop it.
      log.error(`Unknown ${WORK_KIND_PROPERTY} "${kind}"; leaving the message to redelivery`);
      throw new Error(`Unknown ${WORK_KIND_PROPERTY} "${kind}"`);
    }
    await handler(decodeBody(message), info, log);
  };
}
