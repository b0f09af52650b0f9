import type { RecordedRequest, RouteName, TeamsSimulator } from "../test/simulator";
import { ROUTE_NAMES } from "../test/simulator/types";
import { perSecond, round } from "./stats";

/** What the Teams simulator saw between two instants: the ground truth of every scenario. */
export interface TeamsView {
  /** Calls that count against Teams' per-bot limits (every Bot Connector route). */
  readonly calls: number;
  readonly throttled: number;
  readonly delivered: number;
  readonly created: number;
  /** Activities delivered per whole second since `from`. */
  readonly deliveredPerSecond: number[];
  /** Rate-limited calls (create + send) per second since `from`. */
  readonly callsPerSecond: number[];
  /** Sustained rates: events between the first and the last one, over the time between them. */
  readonly sustainedCallsPerSecond: number;
  readonly sustainedDeliveredPerSecond: number;
  /** Seconds from `from` to the last delivery. */
  readonly spanSeconds: number;
  readonly firstDeliveryAt: number | undefined;
  readonly lastDeliveryAt: number | undefined;
}

/** Routes Teams rate-limits: all of the Bot Connector's (reads such as member lists count too). */
const COUNTED: ReadonlySet<RouteName> = new Set(ROUTE_NAMES.filter((r) => r !== "unknown"));

/** Events between the first and last one over the time between them, per second. */
export function sustainedRate(times: readonly number[]): number {
  if (times.length < 2) return 0;
  let first = Infinity;
  let last = -Infinity;
  for (const t of times) {
    first = Math.min(first, t);
    last = Math.max(last, t);
  }
  return last === first ? 0 : ((times.length - 1) * 1000) / (last - first);
}

export function teamsView(sim: TeamsSimulator, from: number, to = Infinity): TeamsView {
  const inRange: RecordedRequest[] = sim.requests.filter(
    (r) => r.at >= from && r.at <= to && COUNTED.has(r.route),
  );
  const deliveries = inRange
    .filter((r) => r.route === "sendActivity" && r.status === 201)
    .map((r) => r.at);
  let last: number | undefined;
  for (const t of deliveries) last = Math.max(last ?? t, t);
  let end = last ?? from;
  for (const r of inRange) end = Math.max(end, r.at);
  return {
    calls: inRange.length,
    throttled: inRange.filter((r) => r.status === 429).length,
    delivered: deliveries.length,
    created: inRange.filter((r) => r.route === "createConversation" && r.status === 201).length,
    deliveredPerSecond: perSecond(deliveries, from, end + 1),
    callsPerSecond: perSecond(
      inRange.map((r) => r.at),
      from,
      end + 1,
    ),
    sustainedCallsPerSecond: round(sustainedRate(inRange.map((r) => r.at)), 1),
    sustainedDeliveredPerSecond: round(sustainedRate(deliveries), 1),
    spanSeconds: last === undefined ? 0 : (last - from) / 1000,
    firstDeliveryAt:
      deliveries.length > 0 ? deliveries.reduce((a, b) => Math.min(a, b)) : undefined,
    lastDeliveryAt: last,
  };
}
