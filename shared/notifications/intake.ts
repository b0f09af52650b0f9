import type { Logger } from "../logging";
import type { QueuePort } from "../queue/queue-port";
import type { NotificationRequestStore } from "../store/notification-requests";
import { summarizeErrors } from "./processor";
import { type FieldError, parseNotificationRequest } from "./schema";
import type { NotificationStatus, NotificationStatusReader } from "./status";

export type IntakeResult =
  | { readonly kind: "accepted"; readonly id: string; readonly scheduledFor?: string }
  | { readonly kind: "invalid"; readonly errors: readonly FieldError[] }
  | {
      readonly kind: "duplicate";
      readonly id: string;
      readonly status: NotificationStatus | undefined;
    };

/**
 * `POST /api/notifications`: validate, record the request under its id, put it on the queue
 * (scheduled for `notBefore` when that is in the future). The record is written first with
 * state `received`, so a duplicate id is refused (409) even while the first copy is still
 * on its way; a `received` record whose enqueue was never confirmed (the process died in
 * between) is enqueued again by the caller's retry instead of being refused forever.
 */
export class NotificationIntake {
  constructor(
    private readonly requests: NotificationRequestStore,
    private readonly queue: () => QueuePort,
    private readonly status: NotificationStatusReader,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async submit(body: unknown, log: Logger): Promise<IntakeResult> {
    const parsed = parseNotificationRequest(body);
    if (!parsed.ok) {
      log
        .with({ requestId: parsed.id, correlationId: parsed.correlationId })
        .warn("Notification request refused (400)", { errors: summarizeErrors(parsed.errors) });
      return { kind: "invalid", errors: parsed.errors };
    }
    const request = parsed.request;
    const requestLog = log.with({ requestId: request.id, correlationId: request.correlationId });
    const notBefore = request.notBefore !== undefined ? new Date(request.notBefore) : undefined;
    const scheduled = notBefore !== undefined && notBefore.getTime() > this.clock().getTime();

    const { created, request: stored } = await this.requests.create({
      id: request.id,
      state: "received",
      source: "http",
      tenantId: request.tenantId,
      correlationId: request.correlationId,
      message: request.message,
      summary: request.summary,
      notBefore: request.notBefore,
    });
    if (!created && stored.state !== "received") {
      requestLog.info("Duplicate notification request id (409)");
      return { kind: "duplicate", id: request.id, status: await this.status.get(request.id) };
    }

    const message = {
      body: request,
      messageId: request.id,
      ...(request.correlationId !== undefined ? { correlationId: request.correlationId } : {}),
    };
    if (scheduled) await this.queue().schedule(message, notBefore);
    else await this.queue().enqueue([message]);
    // Conditional: if the processor already moved the request on, its state stands.
    await this.requests.update(
      stored,
      { state: scheduled ? "scheduled" : "queued" },
      { ifUnchanged: true },
    );
    requestLog.info(scheduled ? "Notification request scheduled" : "Notification request queued", {
      recipients: request.recipients.length,
      notBefore: request.notBefore,
    });
    return {
      kind: "accepted",
      id: request.id,
      ...(scheduled ? { scheduledFor: notBefore.toISOString() } : {}),
    };
  }
}
