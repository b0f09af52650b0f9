import type { Logger } from "../logging";

/**
 * Metric-ish structured log lines: `metric <name>` with `{ metric, value, ... }`. Application
 * Insights keeps the properties as customDimensions, so a KQL query sums them, e.g.
 * `traces | where message startswith "metric " | summarize sum(toint(customDimensions.value))
 * by tostring(customDimensions.metric), bin(timestamp, 5m)`.
 */
export type MetricName =
  | "notifications.sent"
  | "notifications.unreachable"
  | "notifications.failed"
  | "notifications.rejected"
  | "notifications.throttled"
  | "notifications.retried"
  | "notifications.deferred"
  | "notifications.fannedOut"
  | "notifications.duplicate"
  /** A second name of one person in one request: no second copy. */
  | "notifications.samePerson"
  /** A (tenant, id) submitted again with different content: refused. */
  | "notifications.conflict"
  /** A (tenant, id) submitted again with the same content: the same answer, nothing new. */
  | "notifications.replayed"
  /** Work dead-lettered by the broker, recorded by the dead-letter reader. */
  | "notifications.deadLettered"
  /** A message on the intake queue carrying Herald's internal work marker (a forgery). */
  | "notifications.refused"
  /** The app installed through Graph for a recipient Herald had never seen (proactive install). */
  | "notifications.installed"
  /** A sent copy replaced in place with a newer revision of its request. */
  | "notifications.updated"
  /** A sent copy deleted: its request was recalled. */
  | "notifications.recalled"
  /** A copy not sent yet when its request was recalled: never sent. */
  | "notifications.cancelled"
  /** A webhook POST failed; its retry is scheduled. */
  | "events.webhookRetried"
  /** The webhook answered 410 Gone and was turned off. */
  | "events.webhookDisabled"
  /** A request refused again under one id whose row has no room for more rejection events. */
  | "events.rejectionNotRecorded"
  /** A read receipt marked deliveries read. */
  | "notifications.read"
  | "cards.actions";

export function metric(log: Logger, name: MetricName, value = 1): void {
  log.info(`metric ${name}`, { metric: name, value });
}
