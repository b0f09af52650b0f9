import type { OutgoingMessage, QueuePort } from "../shared/queue/queue-port";
import { type LatencySummary, summarize } from "./stats";

/**
 * The events topic as the bench sees it: a QueuePort that keeps, per event, when its transition
 * was decided (the CloudEvent's `time`) and when it reached the topic, so the report gives
 * events per second and the publish lag (transition -> topic). In memory, like the bench's
 * broker: Service Bus' own send time is not Herald's.
 */
export class RecordingTopic implements QueuePort {
  private readonly lagsMs: number[] = [];
  private first: number | undefined;
  private last: number | undefined;
  readonly types = new Map<string, number>();

  enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    const now = Date.now();
    for (const message of messages) {
      const event = message.body as { time?: unknown; type?: unknown };
      const at = typeof event.time === "string" ? Date.parse(event.time) : NaN;
      if (Number.isFinite(at)) this.lagsMs.push(Math.max(0, now - at));
      const type = typeof event.type === "string" ? event.type : "?";
      this.types.set(type, (this.types.get(type) ?? 0) + 1);
    }
    this.first ??= now;
    this.last = now;
    return Promise.resolve();
  }

  schedule(message: OutgoingMessage): Promise<void> {
    return this.enqueue([message]);
  }

  /** What the report shows: events, their rate over the run, and the lag's spread. */
  figures(runMs: number): EventFigures {
    const events = this.lagsMs.length;
    return {
      events,
      perSecond: runMs > 0 ? Math.round((events / runMs) * 10_000) / 10 : 0,
      lagMs: summarize(this.lagsMs),
      types: Object.fromEntries(this.types),
    };
  }
}

export interface EventFigures {
  readonly events: number;
  /** Events published per second of the drain. */
  readonly perSecond: number;
  /** Transition (event time) to topic, ms. */
  readonly lagMs: LatencySummary;
  readonly types: Record<string, number>;
}
