import { type CloudEvent, CLOUDEVENTS_JSON } from "../model/cloud-event";
import type { OutgoingMessage, QueuePort } from "../queue/queue-port";
import { REQUEST_STREAM, webhookMessage } from "./work-items";

/**
 * Publishes what a transition recorded (the transactional outbox's second half). Every
 * transition writes its event(s) in its own conditional write (stored-events.ts); only once that
 * write succeeded does the same invocation call `publish`. A crash in between leaves the work
 * item unsettled: its redelivery finds the row already written and publishes the row's events
 * again with the same ids, which the topic's duplicate detection (message id = event id) drops
 * and consumers de-duplicate; so an event is never lost and never published for a transition
 * that did not happen.
 *
 * The topic gets one message per event (structured CloudEvents JSON, application properties
 * `tenantId`, `type`, `requestId` for subscription filters); with a webhook, the row's events
 * also go to one webhook work item, which posts the ones not yet posted, in order.
 */
export interface EventOutboxDependencies {
  /** `NotificationEvents`: off records and publishes nothing. */
  readonly enabled: boolean;
  /** The events topic (`EventTopicName`). */
  readonly topic: () => QueuePort;
  /** The internal work queue, for webhook work items. */
  readonly work: () => QueuePort;
  /** Whether a webhook is configured. */
  readonly webhook: boolean;
}

/** A row's events: the request's own (`rowKey` undefined) or a recipient's ledger row. */
export interface EventRow {
  readonly tenantId: string;
  readonly requestId: string;
  /** The ledger row's recipient key; undefined for the request row. */
  readonly recipientKey?: string | undefined;
  /** Every event of the row, in order. */
  readonly events?: readonly CloudEvent[] | undefined;
}

/** The request row's own events. */
export function requestEvents(stored: {
  readonly tenantId: string;
  readonly id: string;
  readonly events?: readonly CloudEvent[] | undefined;
}): EventRow {
  return { tenantId: stored.tenantId, requestId: stored.id, events: stored.events };
}

type PublishHook = (events: readonly CloudEvent[]) => void;
let beforePublish: PublishHook | undefined;

/**
 * Test seam: called with the events right before they are published (after their write). The
 * crash test kills the process here to show that a restart publishes them, once, with the same
 * ids. Never set outside tests.
 */
export function setBeforePublishHookForTests(hook: PublishHook | undefined): void {
  beforePublish = hook;
}

/** One event as a topic message: filterable by tenant, type and request. */
export function topicMessage(event: CloudEvent): OutgoingMessage {
  const data = event.data as { tenantId?: unknown; requestId?: unknown };
  return {
    body: event,
    messageId: event.id,
    contentType: CLOUDEVENTS_JSON,
    ...(event.correlationid !== undefined ? { correlationId: event.correlationid } : {}),
    applicationProperties: {
      tenantId: typeof data.tenantId === "string" ? data.tenantId.toLowerCase() : "",
      type: event.type,
      requestId: typeof data.requestId === "string" ? data.requestId : "",
    },
  };
}

export class EventOutbox {
  constructor(private readonly deps: EventOutboxDependencies) {}

  /** Records and publishes nothing (`NotificationEvents` false; unit tests). */
  static disabled(): EventOutbox {
    const none = (): QueuePort => {
      throw new Error("events are off: nothing is published");
    };
    return new EventOutbox({ enabled: false, topic: none, work: none, webhook: false });
  }

  get enabled(): boolean {
    return this.deps.enabled;
  }

  /** `events` when events are on, else none: what a transition's write carries. */
  record(events: () => readonly CloudEvent[]): readonly CloudEvent[] {
    return this.deps.enabled ? events() : [];
  }

  /**
   * Publishes `fresh` (default: all of the row's events, a republish) to the topic, and the
   * row's events to its webhook work item. Throws when the broker refused: the caller's work
   * item is then redelivered and publishes again.
   */
  async publish(row: EventRow, fresh?: readonly CloudEvent[]): Promise<void> {
    const events = row.events ?? [];
    const sent = fresh ?? events;
    if (!this.deps.enabled || sent.length === 0) return;
    beforePublish?.(sent);
    await this.deps.topic().enqueue(sent.map(topicMessage));
    if (this.deps.webhook)
      await this.deps.work().enqueue([
        webhookMessage({
          tenantId: row.tenantId,
          requestId: row.requestId,
          stream: row.recipientKey ?? REQUEST_STREAM,
          events: [...events],
          attempt: 1,
        }),
      ]);
  }
}
