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
  const exponential = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  const floor = Math.max(exponential, Math.min(retryAfterMs ?? 0, max));
  return Math.round(floor * (1 + jitter * random()));
}
