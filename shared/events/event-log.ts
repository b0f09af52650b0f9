import type { CloudEvent } from "../model/cloud-event";
import type { DeliveryLedger } from "../store/delivery-ledger";
import type { NotificationRequestStore, RequestKey } from "../store/notification-requests";
import { TERMINAL_TYPES } from "./event-types";

/**
 * A request's events for `GET /api/notifications/{id}/events`: read from where the transitions
 * wrote them (the request row and its ledger rows), in one order (`orderKey`: by time, the
 * request's `accepted` first and its final event after the deliveries of the same instant, then
 * id), and paged with a cursor.
 *
 * The cursor is the last event returned and how many events came up to it then. Events are only
 * ever added, so the same count next time means nothing was recorded before that point since;
 * a larger count means a transition stamped earlier was written late (a slow write, an instance
 * whose clock lags), and the page then starts over from the first event, so nothing is skipped.
 * Consumers de-duplicate by `id`, as they must for the topic and the webhook anyway.
 */
export interface EventPage {
  readonly events: readonly CloudEvent[];
  /** Where the next page starts (pass it as `after`); the same when nothing new came. */
  readonly next: string;
  /** The request's last event (`completed` or `rejected`) is recorded: only reads may follow. */
  readonly final: boolean;
}

export type EventLookup =
  | { readonly kind: "found"; readonly page: EventPage }
  | { readonly kind: "not-found" }
  | { readonly kind: "bad-cursor" };

interface Cursor {
  /** The `orderKey` of the last event handed out. */
  readonly key: string;
  /** Events up to and including that one when it was handed out. */
  readonly count: number;
}

/** Where an event of the same instant goes: `accepted` first, the final event after the rest. */
function rankOf(type: string): number {
  if (type === "herald.notification.accepted") return 0;
  return TERMINAL_TYPES.has(type) ? 2 : 1;
}

/**
 * An event's place in the log: a sole recipient's final write records its `sent` and the
 * request's `completed` with one time, and the request's final event must come after it.
 * `time` is RFC 3339 in UTC with milliseconds (toISOString), so the keys compare as strings.
 */
export function orderKey(event: CloudEvent): string {
  return `${event.time}|${rankOf(event.type)}|${event.id}`;
}

export const DEFAULT_EVENT_PAGE = 500;
export const MAX_EVENT_PAGE = 1_000;

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.key, cursor.count])).toString("base64url");
}

function decodeCursor(text: string): Cursor | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [key, count] = value as unknown[];
    if (typeof key !== "string" || !Number.isInteger(count) || (count as number) < 0)
      return undefined;
    return { key, count: count as number };
  } catch {
    return undefined;
  }
}

/** The cursor before every event. */
const START = "";

export class EventLog {
  constructor(
    private readonly requests: Pick<NotificationRequestStore, "get">,
    private readonly ledger: Pick<DeliveryLedger, "list">,
  ) {}

  async read(
    key: RequestKey,
    options: { readonly after?: string; readonly limit?: number } = {},
  ): Promise<EventLookup> {
    const cursor =
      options.after === undefined || options.after === START
        ? undefined
        : decodeCursor(options.after);
    if (options.after !== undefined && options.after !== START && cursor === undefined)
      return { kind: "bad-cursor" };
    const stored = await this.requests.get(key);
    if (stored === undefined) return { kind: "not-found" };
    const all: CloudEvent[] = [...(stored.events ?? [])];
    for await (const row of this.ledger.list(key)) all.push(...(row.events ?? []));
    const keyed = all.map((event) => ({ event, key: orderKey(event) }));
    keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const limit = Math.max(1, Math.min(options.limit ?? DEFAULT_EVENT_PAGE, MAX_EVENT_PAGE));
    const from = startOf(keyed, cursor);
    const page = keyed.slice(from, from + limit);
    const events = page.map((k) => k.event);
    const end = from + page.length;
    const last = keyed[end - 1];
    const next =
      last === undefined ? (options.after ?? START) : encodeCursor({ key: last.key, count: end });
    return {
      kind: "found",
      page: { events, next, final: isFinal(keyed.map((k) => k.event)) },
    };
  }
}

/** Where a page after `cursor` starts in `keyed`: after it, or from the top if some came late. */
function startOf(keyed: readonly { readonly key: string }[], cursor: Cursor | undefined): number {
  if (cursor === undefined) return 0;
  let upTo = 0;
  while (upTo < keyed.length && keyed[upTo]!.key <= cursor.key) upTo += 1;
  return upTo === cursor.count ? upTo : 0;
}

/**
 * The request's final event is recorded: `completed` (events about it may still follow: reads,
 * later an update or recall), or `rejected` with no `accepted` after it (a rejected request
 * sent again, fixed, goes on).
 */
function isFinal(ordered: readonly CloudEvent[]): boolean {
  let rejected = false;
  for (const event of ordered) {
    if (event.type === "herald.notification.completed") return true;
    if (event.type === "herald.notification.rejected") rejected = true;
    else if (event.type === "herald.notification.accepted") rejected = false;
  }
  return rejected;
}
