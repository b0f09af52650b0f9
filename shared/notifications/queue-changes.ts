import type { Logger } from "../logging";
import { WORK_KIND_PROPERTY } from "../queue/queue-port";
import type { IntakeResult, NotificationIntake } from "./intake";
import { metric } from "./metrics";
import type { ChangeResult, NotificationRevisions, UpdateChange } from "./revisions";
import {
  type FieldError,
  operationOf,
  parseNotificationRecall,
  parseNotificationUpdate,
} from "./schema";
import type { QueueMessageInfo } from "./work-items";

/**
 * The intake queue's messages: a request goes to the intake; an update or recall of one (its
 * `operation`) is applied here, unless it carries Herald's internal marker (then the intake
 * refuses and records it as the forgery it is).
 */
export function intakeWithChanges(
  intake: Pick<NotificationIntake, "fromQueue">,
  revisions: Pick<NotificationRevisions, "update" | "recall">,
): {
  fromQueue(
    body: unknown,
    info: QueueMessageInfo,
    log: Logger,
  ): Promise<IntakeResult | ChangeResult>;
} {
  return {
    fromQueue: (body, info, log) => {
      const operation = operationOf(body);
      const marked = Object.hasOwn(info.applicationProperties, WORK_KIND_PROPERTY);
      return (operation === "update" || operation === "recall") && !marked
        ? changeFromQueue(revisions, { operation, body, info }, log)
        : intake.fromQueue(body, info, log);
    },
  };
}

/**
 * An update or recall from the intake queue (its `operation`), applied as the HTTP API applies
 * it; the message id makes a redelivery a replay. An invalid one is logged with its field
 * errors and counted (`notifications.refused`); nothing of the request it names changes.
 */
export async function changeFromQueue(
  revisions: Pick<NotificationRevisions, "update" | "recall"> | undefined,
  message: {
    readonly operation: "update" | "recall";
    readonly body: unknown;
    readonly info: QueueMessageInfo;
  },
  log: Logger,
): Promise<ChangeResult> {
  const { operation, body, info } = message;
  const parsed =
    operation === "update" ? parseNotificationUpdate(body) : parseNotificationRecall(body);
  const requestLog = log.with({
    requestId: parsed.ok ? parsed.value.id : parsed.id,
    correlationId: parsed.ok ? parsed.value.correlationId : parsed.correlationId,
    operation,
  });
  if (!parsed.ok || revisions === undefined) {
    const errors = parsed.ok
      ? [{ path: "operation", message: "updates and recalls are not available here" }]
      : parsed.errors;
    requestLog.warn(`Notification ${operation} refused`, { errors: summarize(errors) });
    metric(requestLog, "notifications.refused");
    return { kind: "invalid", errors };
  }
  const { id, tenantId, correlationId } = parsed.value;
  const key = { tenantId, id };
  const result =
    parsed.value.operation === "update"
      ? await revisions.update(
          key,
          { ...pickUpdate(parsed.value), correlationId },
          requestLog,
          info.messageId,
        )
      : await revisions.recall(key, { correlationId }, requestLog, info.messageId);
  if (result.kind !== "accepted")
    requestLog.warn(`Notification ${operation} from the queue not applied`, {
      outcome: result.kind,
      ...(result.kind === "refused" ? { reason: result.message } : {}),
    });
  return result;
}

/** What an update changes (a recall changes none of it). */
function pickUpdate(change: Partial<UpdateChange>): UpdateChange {
  const { message, summary, notBefore } = change;
  return {
    ...(message !== undefined ? { message } : {}),
    ...(summary !== undefined ? { summary } : {}),
    ...(notBefore !== undefined ? { notBefore } : {}),
  };
}

/** Field errors for a log line: paths and reasons, never the offending values. */
function summarize(errors: readonly FieldError[]): string {
  return errors
    .slice(0, 10)
    .map((e) => `${e.path}: ${e.message}`)
    .join("; ");
}
