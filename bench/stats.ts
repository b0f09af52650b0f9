/** Small numeric helpers for the benchmark: percentiles, per-second series, peak RSS. */
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";

/** The value at quantile `q` (0..1) of `values`, nearest-rank; NaN for none. */
export function percentile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export function summarize(valuesMs: ArrayLike<number>): LatencySummary {
  let max = 0;
  for (let i = 0; i < valuesMs.length; i++) max = Math.max(max, valuesMs[i]!);
  return {
    count: valuesMs.length,
    p50Ms: round(percentile(valuesMs, 0.5), 2),
    p99Ms: round(percentile(valuesMs, 0.99), 2),
    maxMs: round(max, 2),
  };
}

/** Counts of events per whole second since `start` (ms epoch), one entry per second. */
export function perSecond(timesMs: readonly number[], start: number, end?: number): number[] {
  const last = end ?? Math.max(start, ...timesMs);
  const buckets = new Array<number>(Math.max(1, Math.ceil((last - start) / 1000))).fill(0);
  for (const t of timesMs) {
    const index = Math.floor((t - start) / 1000);
    if (index >= 0 && index < buckets.length) buckets[index]! += 1;
  }
  return buckets;
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Samples this process's RSS while running, for the peak under load (bytes). */
export class RssSampler {
  private peak = process.memoryUsage.rss();
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 50) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
  }

  /** Stops sampling; the highest RSS seen, in MB. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return round(this.peak / (1024 * 1024), 1);
  }
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Samples this process's event-loop delay until `stop`: on a machine where other work competes
 * for the cores, timers (a pacer's slots) fire late and requests are read late by this much.
 */
export class LoopDelaySampler {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  constructor() {
    this.histogram.enable();
  }

  /** p50, p99 and max in ms. */
  stop(): { p50: number; p99: number; max: number } {
    this.histogram.disable();
    const ms = (ns: number) => round(ns / 1e6, 1);
    return {
      p50: ms(this.histogram.percentile(50)),
      p99: ms(this.histogram.percentile(99)),
      max: ms(this.histogram.max),
    };
  }
}
