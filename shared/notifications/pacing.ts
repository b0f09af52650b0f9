import {
  GLOBAL_PER_BOT_PER_TENANT_LIMIT,
  PER_BOT_PER_CONVERSATION_LIMITS,
  type RateWindow,
} from "../teams-limits";

/**
 * Client-side pacing under Teams' documented bot limits (shared/teams-limits.ts), so 429s
 * stay rare: one limiter per tenant (every call of this bot in the tenant) and one per
 * conversation (sends to one 1:1 chat). No library fits: the usual token-bucket packages
 * enforce one window, while Teams states four windows at once (7/1 s, 8/2 s, 60/30 s,
 * 1800/1 h) that must all hold, and callers here need "when may I go" without blocking.
 *
 * Each limiter keeps the times of its granted calls (never more than the largest window's
 * limit) and grants the earliest time at which one more call keeps every window within its
 * limit. Grants are monotonic, so one pass over the windows finds that time.
 *
 * Adaptive: a 429 halves the tenant's rate (down to `minScale`; once per burst of 429s) and
 * blocks the conversation for Retry-After; the rate grows back by `recoveryFactor` every
 * `recoveryMs` without a 429.
 * Limits are per process: with several instances, each paces on its own (see
 * docs/notifications.md for the scale-out settings that keep their sum under Teams').
 */
export class SlidingWindowLimiter {
  private times: number[] = [];
  private blockedUntil = 0;
  private readonly maxKeep: number;
  private readonly shortest: RateWindow | undefined;

  constructor(private readonly windows: readonly RateWindow[]) {
    this.maxKeep = Math.max(1, ...windows.map((w) => w.limit));
    this.shortest = windows.reduce<RateWindow | undefined>(
      (s, w) => (s === undefined || w.seconds < s.seconds ? w : s),
      undefined,
    );
  }

  /** Earliest time >= `now` one more call may start at `scale` (0..1] of the limits. */
  earliest(now: number, scale = 1): number {
    const last = this.times.at(-1);
    let at = Math.max(now, this.blockedUntil, last ?? 0);
    // Spread grants evenly over the shortest window rather than granting its whole limit at
    // once: a burst granted at a window's edge reaches Teams with a few ms of jitter (storage
    // calls between slot and send), and part of it then counts in the previous window (429s).
    if (last !== undefined && this.shortest !== undefined) {
      const limit = Math.max(1, Math.floor(this.shortest.limit * scale));
      at = Math.max(at, last + (this.shortest.seconds * 1000) / limit);
    }
    const n = this.times.length;
    for (const window of this.windows) {
      const limit = Math.max(1, Math.floor(window.limit * scale));
      if (n < limit) continue;
      // At most limit-1 earlier grants may remain within the window ending at `at`.
      const oldestToLeave = this.times[n - limit]!;
      at = Math.max(at, oldestToLeave + window.seconds * 1000 + 1);
    }
    return at;
  }

  /** Records a call at `at` (from `earliest`). */
  take(at: number): void {
    this.times.push(at);
    if (this.times.length > this.maxKeep * 2) this.times = this.times.slice(-this.maxKeep);
  }

  /** Gives back a grant that was not used. */
  release(at: number): void {
    const index = this.times.lastIndexOf(at);
    if (index >= 0) this.times.splice(index, 1);
  }

  block(until: number): void {
    this.blockedUntil = Math.max(this.blockedUntil, until);
  }

  /** True when nothing recorded can affect a call at `now` (safe to forget). */
  idle(now: number): boolean {
    const longest = Math.max(0, ...this.windows.map((w) => w.seconds * 1000));
    return (this.times.at(-1) ?? 0) + longest < now && this.blockedUntil < now;
  }
}

export interface PacerOptions {
  /** Every call of the bot in one tenant (default: Teams' 50/s). */
  readonly perTenant?: readonly RateWindow[];
  /** Sends to one conversation (default: Teams' per-bot per-conversation send limits). */
  readonly perConversation?: readonly RateWindow[];
  /**
   * Fraction of the per-tenant limit to use (default 0.96, i.e. 48 of 50 calls/s: Teams may
   * count one message as more than one call, so stay a little under the documented ceiling).
   */
  readonly margin?: number;
  readonly minScale?: number;
  readonly recoveryMs?: number;
  readonly recoveryFactor?: number;
  readonly now?: () => number;
}

export interface Grant {
  /** How long to wait before calling Teams (when granted), or until a slot frees up. */
  readonly delayMs: number;
  /** False when the wait would exceed `maxDelayMs`: nothing was reserved; defer the work. */
  readonly granted: boolean;
  /** Give the slot back (when the caller gives up after all). */
  cancel(): void;
}

interface TenantPace {
  limiter: SlidingWindowLimiter;
  scale: number;
  lastChange: number;
  lastDecrease: number;
}

const MAX_CONVERSATIONS = 20_000;
/** 429s within this long of a halving count as the same overload (Teams' shortest window). */
const DECREASE_INTERVAL_MS = 1_000;

function notGranted(delayMs: number): Grant {
  return { delayMs, granted: false, cancel: () => {} };
}

export class Pacer {
  private readonly tenants = new Map<string, TenantPace>();
  private readonly conversations = new Map<string, SlidingWindowLimiter>();
  private readonly perTenant: readonly RateWindow[];
  private readonly perConversation: readonly RateWindow[];
  private readonly margin: number;
  private readonly minScale: number;
  private readonly recoveryMs: number;
  private readonly recoveryFactor: number;
  private readonly now: () => number;

  constructor(options: PacerOptions = {}) {
    this.perTenant = options.perTenant ?? [GLOBAL_PER_BOT_PER_TENANT_LIMIT];
    this.perConversation =
      options.perConversation ?? PER_BOT_PER_CONVERSATION_LIMITS.sendToConversation;
    this.margin = options.margin ?? 0.96;
    this.minScale = options.minScale ?? 0.1;
    // 3 s: back from half rate in ~9 s. A lone 429 (a GC pause bunching a few calls) then
    // costs seconds, not the minute a 10 s step took (bench/: "At Teams' limits").
    this.recoveryMs = options.recoveryMs ?? 3_000;
    this.recoveryFactor = options.recoveryFactor ?? 1.25;
    this.now = options.now ?? Date.now;
  }

  /**
   * Reserves the next slot for a call in `tenantId` (and to `conversationId`, for a send).
   * Nothing is reserved (`granted` false) when the slot is more than `maxDelayMs` away, or
   * when the conversation, not the tenant, is what holds the call back: tenant grants are
   * handed out in order, so a far-off grant would hold back every later call of the tenant.
   * The caller then waits `delayMs` and asks again, or re-schedules its work.
   */
  reserve(tenantId: string, conversationId?: string, maxDelayMs = Infinity): Grant {
    const now = this.now();
    const tenant = this.tenant(tenantId, now);
    const conversation =
      conversationId === undefined ? undefined : this.conversation(conversationId, now);
    const at = tenant.limiter.earliest(now, tenant.scale * this.margin);
    const conversationAt = conversation?.earliest(now) ?? now;
    if (conversationAt > at) return notGranted(conversationAt - now);
    if (at - now > maxDelayMs) return notGranted(at - now);
    tenant.limiter.take(at);
    conversation?.take(at);
    let cancelled = false;
    return {
      delayMs: Math.max(0, at - now),
      granted: true,
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
        tenant.limiter.release(at);
        conversation?.release(at);
      },
    };
  }

  /** Teams answered 429: slow the tenant down, hold the conversation for Retry-After. */
  throttled(tenantId: string, conversationId: string | undefined, retryAfterMs?: number): void {
    const now = this.now();
    const tenant = this.tenant(tenantId, now);
    // One halving per burst: the 429s of calls already in flight report the same overload,
    // and halving for each of them would drop the rate to the floor for minutes.
    if (now - tenant.lastDecrease >= DECREASE_INTERVAL_MS) {
      tenant.scale = Math.max(this.minScale, tenant.scale / 2);
      tenant.lastDecrease = now;
    }
    tenant.lastChange = now;
    if (conversationId !== undefined && retryAfterMs !== undefined)
      this.conversation(conversationId, now).block(now + retryAfterMs);
  }

  /** The tenant's current fraction of its limit (1 = unthrottled); for logs and tests. */
  scaleOf(tenantId: string): number {
    return this.tenant(tenantId, this.now()).scale;
  }

  private tenant(tenantId: string, now: number): TenantPace {
    const key = tenantId.toLowerCase();
    let pace = this.tenants.get(key);
    if (pace === undefined) {
      pace = {
        limiter: new SlidingWindowLimiter(this.perTenant),
        scale: 1,
        lastChange: now,
        lastDecrease: -Infinity,
      };
      this.tenants.set(key, pace);
    } else if (pace.scale < 1) {
      const periods = Math.floor((now - pace.lastChange) / this.recoveryMs);
      if (periods > 0) {
        pace.scale = Math.min(1, pace.scale * this.recoveryFactor ** periods);
        pace.lastChange += periods * this.recoveryMs;
      }
    }
    return pace;
  }

  private conversation(conversationId: string, now: number): SlidingWindowLimiter {
    let limiter = this.conversations.get(conversationId);
    if (limiter === undefined) {
      if (this.conversations.size >= MAX_CONVERSATIONS) this.forgetIdle(now);
      limiter = new SlidingWindowLimiter(this.perConversation);
      this.conversations.set(conversationId, limiter);
    }
    return limiter;
  }

  private forgetIdle(now: number): void {
    for (const [id, limiter] of this.conversations)
      if (limiter.idle(now)) this.conversations.delete(id);
  }
}
