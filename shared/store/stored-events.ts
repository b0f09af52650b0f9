import { HeraldError } from "../errors";
import { type CloudEvent, isCloudEvent } from "../model/cloud-event";
import { MAX_STRING_PROPERTY } from "./limits";

/**
 * The events a row carries (the transactional outbox: each transition's own conditional write
 * holds the event it reports), kept as one JSON string property, `eventsJson`. A row's events
 * only grow, in the order they happened, and are never removed: the pull endpoint's cursor and
 * the webhook's per-recipient cursor count them. A recipient has a handful (installed, one
 * final state, read), so one string property holds them with room to spare.
 */
export function eventsJson(events: readonly CloudEvent[] | undefined): string | undefined {
  if (events === undefined || events.length === 0) return undefined;
  const json = JSON.stringify(events);
  if (json.length > MAX_STRING_PROPERTY)
    throw new HeraldError(
      `${events.length} events (${json.length} characters) do not fit one row's events property`,
    );
  return json;
}

/** The stored events back; a value that is not an events array (never written so) is none. */
export function parseEvents(json: unknown): readonly CloudEvent[] | undefined {
  if (typeof json !== "string" || json === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  return Array.isArray(parsed) ? parsed.filter(isCloudEvent) : undefined;
}

/**
 * How much of a row's events property a kind of event without a bound in number (one
 * `herald.notification.rejected` per refused copy of a request) may fill: the rest is kept for
 * the events every request has (its `accepted`, its `completed`), so the cap never fails a write.
 */
export const UNBOUNDED_EVENTS_ROOM = 24_000;

/** Whether `added` fits beside `events` within `room` characters of the events property. */
export function fitsWithin(
  events: readonly CloudEvent[] | undefined,
  added: readonly CloudEvent[],
  room: number,
): boolean {
  return JSON.stringify(withEvents(events, added)).length <= room;
}

/** `events` with `added` appended, each id once (a redone transition brings the same id). */
export function withEvents(
  events: readonly CloudEvent[] | undefined,
  added: readonly CloudEvent[],
): readonly CloudEvent[] {
  const ids = new Set((events ?? []).map((e) => e.id));
  return [...(events ?? []), ...added.filter((e) => !ids.has(e.id))];
}
