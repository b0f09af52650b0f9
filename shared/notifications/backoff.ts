/**
 * When to try a transient failure again: exponential back-off with jitter, never earlier than
 * Teams' Retry-After. `attempt` is the attempt that just failed (1 = the first try).
 *
 * Delay = max(Retry-After, base * 2^(attempt-1)) capped at `maxMs`, then stretched by a random
 * 0-25 % so retries of many recipients that failed together do not return together. Jitter
 * only ever adds time: Retry-After is a floor.
 */
export interface BackoffOptions {
  readonly baseMs?: number;
  readonly maxMs?: number;
  readonly jitter?: number;
}

export function retryDelayMs(
  attempt: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
  options: BackoffOptions = {},
): number {
  const base = options.baseMs ?? 2_000;
  const max = options.maxMs ?? 10 * 60_000;
  const jitter = options.jitter ?? 0.25;
  // Guarded: a NaN or infinite input (a bad header, a corrupt attempt count) must not become
  // an invalid Date later; Retry-After beyond `maxMs` waits `maxMs`.
  const tries = Number.isFinite(attempt) ? Math.max(0, Math.min(attempt - 1, 52)) : 0;
  const exponential = Math.min(max, base * 2 ** tries);
  const after = retryAfterMs === undefined || Number.isNaN(retryAfterMs) ? 0 : retryAfterMs;
  const floor = Math.max(exponential, Math.min(Math.max(0, after), max));
  const spread = random();
  const factor = Number.isFinite(spread) ? 1 + jitter * Math.min(1, Math.max(0, spread)) : 1;
  return Math.round(floor * factor);
}
