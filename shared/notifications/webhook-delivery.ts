import { HeraldError } from "../errors";
import { TERMINAL_TYPES } from "../events/event-types";
import { signWebhook } from "../events/standard-webhooks";
import type { Logger } from "../logging";
import { type CloudEvent, CLOUDEVENTS_JSON } from "../model/cloud-event";
import type { QueuePort } from "../queue/queue-port";
import type { WebhookState } from "../store/webhook-state";
import { metric } from "./metrics";
import {
  type QueueMessageInfo,
  REQUEST_STREAM,
  webhookMessage,
  type WebhookWork,
} from "./work-items";

export type FetchLike = typeof fetch;

export interface WebhookDeliveryDependencies {
  /** `EventWebhookUrl` and the key of `EventWebhookSecret`. */
  readonly webhook: { readonly url: string; readonly key: Buffer } | undefined;
  readonly state: Pick<WebhookState, "cursor" | "advance" | "disabled" | "disable">;
  /** The internal work queue: a retry is a scheduled work item, never a sleep. */
  readonly queue: () => QueuePort;
  readonly fetch?: FetchLike;
  readonly clock: () => Date;
  readonly random: () => number;
  /** Longest wait for the receiver's answer to one POST (default 10 s). */
  readonly timeoutMs?: number;
}

export type WebhookResult =
  | { readonly kind: "posted"; readonly count: number }
  | { readonly kind: "retrying"; readonly at: Date; readonly posted: number }
  | { readonly kind: "webhook-off" | "disabled" };

/**
 * Waits before each retry of a failed POST (the attempt that failed is the index + 1), about as
 * the Standard Webhooks reference retries: within a day, then the work item is dead-lettered for
 * the operator (`herald dlq`), who can replay it for one more try.
 */
export const WEBHOOK_RETRY_DELAYS_MS: readonly number[] = [
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  10 * 3_600_000,
];
export const WEBHOOK_MAX_ATTEMPTS = WEBHOOK_RETRY_DELAYS_MS.length + 1;
/** A `Retry-After` is honoured up to this long. */
const MAX_RETRY_AFTER_MS = 24 * 3_600_000;
/** How long this process trusts what it read of the webhook's on/off state. */
const STATE_TTL_MS = 30_000;

type PostOutcome =
  | { readonly kind: "ok" | "gone" }
  | { readonly kind: "failed"; readonly reason: string; readonly retryAfterMs?: number };

/**
 * POSTs one ledger row's events (a recipient's, or the request's own) to the webhook, each signed
 * per Standard Webhooks, in order, from the row's cursor on: an event is posted only after the
 * ones before it were answered 2xx, so the receiver gets each recipient's events in order. A
 * failure records how far it got and schedules the same work again with back-off (`Retry-After`
 * honoured); after `WEBHOOK_MAX_ATTEMPTS` the work throws, the broker dead-letters it, and it is
 * there for the operator. A 410 Gone turns the webhook off, with an error logged and the state
 * kept in the Webhooks table. Receivers de-duplicate by `webhook-id` (the event id): two work
 * items of one row racing may post an event twice, never out of order.
 */
export class WebhookDelivery {
  private readonly fetch: FetchLike;
  private known: { readonly off: boolean; readonly until: number } | undefined;
  /** How often this process turned the webhook off (a read begun before is stale). */
  private turnedOff = 0;

  constructor(private readonly deps: WebhookDeliveryDependencies) {
    this.fetch = deps.fetch ?? globalThis.fetch;
  }

  async run(work: WebhookWork, info: QueueMessageInfo, log: Logger): Promise<WebhookResult> {
    const webhook = this.deps.webhook;
    if (webhook === undefined) return { kind: "webhook-off" };
    if (await this.isOff(webhook.url)) {
      log.info("Webhook is off (it answered 410 Gone): events not posted");
      return { kind: "disabled" };
    }
    if (work.attempt >= WEBHOOK_MAX_ATTEMPTS && info.deliveryCount > 1)
      throw new HeraldError(`webhook failed ${work.attempt} times: dead-lettered for the operator`);
    const request = { tenantId: work.tenantId, id: work.requestId };
    const cursor = await this.deps.state.cursor(request, work.stream);
    const until = await this.holdAt(work, cursor.posted);
    const turnedOff = this.turnedOff;
    let posted = cursor.posted;
    let failure: Extract<PostOutcome, { kind: "failed" }> | undefined;
    while (posted < until && failure === undefined) {
      // Another item of this process met a 410 meanwhile: nothing more goes to that URL.
      if (turnedOff !== this.turnedOff) return { kind: "disabled" };
      const outcome = await this.post(webhook, work.events[posted]!);
      if (outcome.kind === "gone") {
        await this.turnOff(webhook.url, log);
        return { kind: "disabled" };
      }
      if (outcome.kind === "failed") failure = outcome;
      else posted += 1;
    }
    await this.deps.state.advance(request, work.stream, cursor, posted);
    if (failure !== undefined) return this.retry(work, posted, failure, log);
    if (until < work.events.length) return this.hold(work, posted, log);
    return { kind: "posted", count: posted - cursor.posted };
  }

  /**
   * How far this item may post: a request's final event recorded on its only recipient's row
   * (that write carries `sent` and `completed` together) waits until the request's own stream
   * has posted its `accepted`, so a receiver never hears `completed` before `accepted` while
   * that stream waits out retries. After the retry budget it is posted anyway (the request's
   * stream went to the dead-letter queue, or the webhook was set after the request came).
   */
  private async holdAt(work: WebhookWork, from: number): Promise<number> {
    const terminal = work.events.findIndex((e, i) => i >= from && TERMINAL_TYPES.has(e.type));
    if (work.stream === REQUEST_STREAM || terminal < 0) return work.events.length;
    if ((work.held ?? 0) >= WEBHOOK_RETRY_DELAYS_MS.length) return work.events.length;
    const request = { tenantId: work.tenantId, id: work.requestId };
    const own = await this.deps.state.cursor(request, REQUEST_STREAM);
    return own.posted > 0 ? work.events.length : terminal;
  }

  private async hold(work: WebhookWork, posted: number, log: Logger): Promise<WebhookResult> {
    const held = work.held ?? 0;
    const at = new Date(this.deps.clock().getTime() + WEBHOOK_RETRY_DELAYS_MS[held]!);
    await this.deps
      .queue()
      .schedule(webhookMessage({ ...work, held: held + 1 }, { unique: true }), at);
    log.info("Webhook: the request's final event waits for its accepted event to be posted", {
      held: held + 1,
      at: at.toISOString(),
    });
    return { kind: "retrying", at, posted };
  }

  private async retry(
    work: WebhookWork,
    posted: number,
    failure: Extract<PostOutcome, { kind: "failed" }>,
    log: Logger,
  ): Promise<WebhookResult> {
    const properties = { attempt: work.attempt, reason: failure.reason, posted };
    if (work.attempt >= WEBHOOK_MAX_ATTEMPTS) {
      log.error("Webhook failed on its last attempt; the work goes to the dead-letter queue", {
        ...properties,
      });
      throw new HeraldError(`webhook failed ${work.attempt} times: ${failure.reason}`);
    }
    const base = WEBHOOK_RETRY_DELAYS_MS[work.attempt - 1]!;
    const jittered = base * (0.9 + 0.2 * this.deps.random());
    const delay = Math.min(MAX_RETRY_AFTER_MS, Math.max(jittered, failure.retryAfterMs ?? 0));
    const at = new Date(this.deps.clock().getTime() + delay);
    await this.deps
      .queue()
      .schedule(webhookMessage({ ...work, attempt: work.attempt + 1 }, { unique: true }), at);
    log.warn("Webhook failed; retry scheduled", { ...properties, at: at.toISOString() });
    metric(log, "events.webhookRetried");
    return { kind: "retrying", at, posted };
  }

  private async post(
    webhook: { readonly url: string; readonly key: Buffer },
    event: CloudEvent,
  ): Promise<PostOutcome> {
    const body = JSON.stringify(event);
    let response: Response;
    try {
      response = await this.fetch(webhook.url, {
        method: "POST",
        headers: {
          "content-type": CLOUDEVENTS_JSON,
          "user-agent": "Herald",
          ...signWebhook(webhook.key, event.id, this.deps.clock(), body),
        },
        body,
        // A redirect is no answer: the signature names this URL's receiver.
        redirect: "manual",
        signal: AbortSignal.timeout(this.deps.timeoutMs ?? 10_000),
      });
    } catch (error) {
      const e = error as { name?: unknown; cause?: { code?: unknown } };
      const reason =
        e.name === "TimeoutError"
          ? "timed out"
          : typeof e.cause?.code === "string"
            ? e.cause.code
            : "network error";
      return { kind: "failed", reason };
    }
    await response.body?.cancel().catch(() => undefined);
    if (response.status >= 200 && response.status < 300) return { kind: "ok" };
    if (response.status === 410) return { kind: "gone" };
    const retryAfterMs = retryAfter(response.headers.get("retry-after"), this.deps.clock());
    return {
      kind: "failed",
      reason: `answered ${response.status}`,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }

  private async isOff(url: string): Promise<boolean> {
    const now = this.deps.clock().getTime();
    if (this.known !== undefined && this.known.until > now) return this.known.off;
    const turnedOff = this.turnedOff;
    const off = (await this.deps.state.disabled(url)) !== undefined;
    // A 410 answered while this read was on its way is newer than what it read.
    if (turnedOff !== this.turnedOff) return true;
    this.known = { off, until: now + STATE_TTL_MS };
    return off;
  }

  private async turnOff(url: string, log: Logger): Promise<void> {
    const at = this.deps.clock();
    await this.deps.state.disable(url, {
      disabledAt: at.toISOString(),
      status: 410,
      origin: new URL(url).origin,
    });
    this.turnedOff += 1;
    this.known = { off: true, until: at.getTime() + STATE_TTL_MS };
    log.error(
      "Webhook answered 410 Gone: turned off, no more events are posted to it (set EventWebhookUrl to a new URL, or delete its row in the Webhooks table, to turn it on again)",
      { origin: new URL(url).origin },
    );
    metric(log, "events.webhookDisabled");
  }
}

/** `Retry-After` as seconds or an HTTP date, in ms from now. */
function retryAfter(header: string | null, now: Date): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}
