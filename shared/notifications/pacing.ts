import { MAX_RETRY_AFTER_MS } from "../connector/teams-connector";
import {
  GLOBAL_PER_BOT_PER_TENANT_LIMIT,
  PER_BOT_PER_CONVERSATION_LIMITS,
  type RateWindow,
} from "../teams-limits";
import { BoundedMap } from "../util/bounded-map";

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
 * Adaptive: a 429 blocks the conversation for Retry-After (clamped to an hour). A lone 429
 * leaves the tenant's rate alone: it is most often one conversation's limit or a few calls
 * bunched by a GC pause, and halving the whole tenant for it cost a one-instance run at Teams'
 * limits 13 % of its throughput. A second 429 within `BURST_WINDOW_MS` is an overload: the
 * tenant's rate halves (down to `minScale`; once per second) and grows back by
 * `recoveryFactor` every `recoveryMs` without a 429.
 *
 * Bounded: conversations and tenants are kept in LRU maps (util/bounded-map.ts) with O(1)
 * eviction. A conversation whose history can no longer hold back a call (fewer grants than any
 * window allows, past its spacing and block) is dropped when it reaches the old end; a busy one
 * evicted by the bound only forgets its history, which the tenant limiter still bounds.
 * Limits are per process: with several instances, each paces on its own (see
 * docs/notifications.md for the scale-out settings that keep their sum under Teams').
 */
export class SlidingWindowLimiter {
  private times: number[] = [];
  private blockedUntil = 0;
  private readonly maxKeep: number;
  private readonly shortest: RateWindow | undefined;

  /**
   * `spread`: grants are also spaced evenly over the shortest window (reservations); without it
   * only the windows' counts hold a call back (the gate on calls actually starting). `slackMs`
   * widens every window by that much: a call counted at `t` may be seen up to that much later.
   */
  constructor(
    private readonly windows: readonly RateWindow[],
    private readonly spread = true,
    private readonly slackMs = 0,
  ) {
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
    if (this.spread && last !== undefined && this.shortest !== undefined) {
      const limit = Math.max(1, Math.floor(this.shortest.limit * scale));
      at = Math.max(at, last + (this.shortest.seconds * 1000) / limit);
    }
    const n = this.times.length;
    for (const window of this.windows) {
      const limit = Math.max(1, Math.floor(window.limit * scale));
      if (n < limit) continue;
      // At most limit-1 earlier grants may remain within the window ending at `at`.
      const oldestToLeave = this.times[n - limit]!;
      at = Math.max(at, oldestToLeave + window.seconds * 1000 + this.slackMs + 1);
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

  /**
   * Counts a recorded call at `to` instead of `from` (later: when it really left), kept in order.
   * A time no longer kept (more calls since than any window holds) changes nothing.
   */
  move(from: number, to: number): void {
    if (to <= from) return;
    const index = this.times.lastIndexOf(from);
    if (index < 0) return;
    this.times.splice(index, 1);
    let at = this.times.length;
    while (at > 0 && this.times[at - 1]! > to) at -= 1;
    this.times.splice(at, 0, to);
  }

  block(until: number): void {
    if (Number.isFinite(until)) this.blockedUntil = Math.max(this.blockedUntil, until);
  }

  /** True when nothing recorded can affect a call at `now` (safe to forget). */
  idle(now: number): boolean {
    if (this.blockedUntil >= now) return false;
    const last = this.times.at(-1);
    if (last === undefined) return true;
    const shortest = this.shortest;
    // Fewer grants than every window's limit, and past the spacing: a fresh limiter would
    // answer the same, so forgetting this one changes nothing.
    const fewest = Math.min(...this.windows.map((w) => w.limit));
    if (
      this.times.length < fewest &&
      (shortest === undefined || last + (shortest.seconds * 1000) / shortest.limit < now)
    )
      return true;
    const longest = Math.max(0, ...this.windows.map((w) => w.seconds * 1000 + this.slackMs));
    return last + longest < now;
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
  /**
   * Fraction of the per-tenant limit the gate holds real call starts to (default 1: Teams'
   * limit itself, in windows widened by `gateSlackMs`; never below `margin`). Above the plan on
   * purpose: grants come exactly at the planned rate, so a gate at the same rate has no room for
   * the few ms by which wire times jitter; it then holds calls back, each hold shifts every
   * later window, and the tenant drifts below its plan (47.4/s of 48 in the bench).
   */
  readonly gateMargin?: number;
  /**
   * How much later than the gate counted it a call may reach Teams (default 25 ms): the gate's
   * windows are this much longer than Teams'. Calls do not arrive in the order and spacing they
   * were counted in: the socket write, the network and Teams' own clock add a few ms each (p99.9
   * 21 ms, max 28 ms counted to arrival, bench: four tenants, 1-8 instances), and timers that
   * fire late together start calls in bursts (8 in 50 ms). A window of starts that is full at
   * its end then overlaps the next of Teams' seconds by a burst: 51-53 calls there, where the
   * gate had counted 49 in its own (429s, and a halved tenant). Any one of Teams' seconds falls
   * within one of the gate's widened windows, so it sees at most the gate's count (for calls
   * later than that, only a rare one at a window's edge); at 50 per 1,026 ms (48.7/s) the gate
   * still has room above the plan's 48/s.
   */
  readonly gateSlackMs?: number;
  readonly minScale?: number;
  readonly recoveryMs?: number;
  readonly recoveryFactor?: number;
  readonly now?: () => number;
}

/** The gate's answer: wait `waitMs` and ask again, or go (0) and say when the call left. */
export interface GateAnswer {
  readonly waitMs: number;
  /** The call is on the wire now (a new connection's handshake later): its start counts now. */
  readonly onWire: () => void;
}

const NOTHING_TO_MOVE = () => {};

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
  /** When calls actually started (`gate`): reserved slots drift by the work between slot and call. */
  starts: SlidingWindowLimiter;
  scale: number;
  lastChange: number;
  lastDecrease: number;
  /** When the last 429 came (a second one within `BURST_WINDOW_MS` slows the tenant). */
  last429: number;
}

/** Conversations paced at once; the least recently used beyond this are forgotten. */
export const MAX_PACED_CONVERSATIONS = 20_000;
/** Tenants paced at once (one instance serves a few; sessions move between instances). */
export const MAX_PACED_TENANTS = 1_000;
/** 429s within this long of a halving count as the same overload (Teams' shortest window). */
const DECREASE_INTERVAL_MS = 1_000;
/** A 429 within this long of the previous one makes an overload, not a lone 429. */
const BURST_WINDOW_MS = 2_000;
/** Idle conversations checked at the old end of the map per new conversation. */
const SWEEP_PER_INSERT = 2;

function notGranted(delayMs: number): Grant {
  return { delayMs, granted: false, cancel: () => {} };
}

export class Pacer {
  private readonly tenants = new BoundedMap<string, TenantPace>(MAX_PACED_TENANTS);
  private readonly conversations = new BoundedMap<string, SlidingWindowLimiter>(
    MAX_PACED_CONVERSATIONS,
  );
  private readonly perTenant: readonly RateWindow[];
  private readonly perConversation: readonly RateWindow[];
  private readonly margin: number;
  private readonly gateMargin: number;
  private readonly gateSlackMs: number;
  private readonly minScale: number;
  private readonly recoveryMs: number;
  private readonly recoveryFactor: number;
  private readonly now: () => number;

  constructor(options: PacerOptions = {}) {
    this.perTenant = options.perTenant ?? [GLOBAL_PER_BOT_PER_TENANT_LIMIT];
    this.perConversation =
      options.perConversation ?? PER_BOT_PER_CONVERSATION_LIMITS.sendToConversation;
    this.margin = options.margin ?? 0.96;
    this.gateMargin = Math.max(this.margin, options.gateMargin ?? 1);
    this.gateSlackMs = Math.max(0, options.gateSlackMs ?? 25);
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
    if (conversationAt > at) return notGranted(Math.min(conversationAt - now, MAX_RETRY_AFTER_MS));
    if (at - now > maxDelayMs) return notGranted(Math.min(at - now, MAX_RETRY_AFTER_MS));
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

  /**
   * The last check before a call of `tenantId` goes, right before it: how long to wait (0: go
   * now, and the start is recorded). A reserved slot is a plan; the storage writes between the
   * slot and the call take 5-150 ms on a busy machine, so calls planned 21 ms apart can start
   * bunched, and a 1 s window then holds 53-55 of them where the plan had 48 (Teams answers
   * 429). The gate counts the starts themselves under the same windows (widened by
   * `gateSlackMs`) and scale, so no window of real starts exceeds the limit. It rarely waits:
   * only when the drift ran calls together.
   *
   * A start is counted when the call begins; `onWire` moves it to when the request really left
   * (connector/wire-time.ts), which for a call on a new connection is a handshake later. Calls
   * are answered long before a window's length, so the gate counts what Teams counts.
   */
  gate(tenantId: string): GateAnswer {
    const now = this.now();
    const tenant = this.tenant(tenantId, now);
    const at = tenant.starts.earliest(now, this.gateScale(tenant.scale));
    if (at > now) return { waitMs: at - now, onWire: NOTHING_TO_MOVE };
    tenant.starts.take(now);
    let moved = false;
    return {
      waitMs: 0,
      onWire: () => {
        if (moved) return;
        moved = true;
        tenant.starts.move(now, this.now());
      },
    };
  }

  /**
   * The gate's fraction of the limit at the tenant's `scale`: `gateMargin` of it, and at least one
   * call per window more than the plan grants. Its windows are `gateSlackMs` longer than the
   * plan's, so at a scale where both round to the same count (25 %: 12 and 12 a second) the gate
   * would need 1,026 ms for what the plan spaces over 1,000, hold every window, and drift.
   */
  private gateScale(scale: number): number {
    const limit = this.perTenant.reduce((n, w) => Math.min(n, w.limit), Infinity);
    if (!Number.isFinite(limit)) return scale * this.gateMargin;
    const planned = Math.max(1, Math.floor(limit * scale * this.margin));
    return Math.min(1, Math.max(scale * this.gateMargin, (planned + 1) / limit));
  }

  /** Teams answered 429: slow the tenant down, hold the conversation for Retry-After. */
  throttled(tenantId: string, conversationId: string | undefined, retryAfterMs?: number): void {
    const now = this.now();
    const tenant = this.tenant(tenantId, now);
    const overload = now - tenant.last429 <= BURST_WINDOW_MS;
    tenant.last429 = now;
    // A lone 429 leaves the tenant's rate alone (see the class comment). One halving per
    // burst: the 429s of calls already in flight report the same overload, and halving for
    // each of them would drop the rate to the floor for minutes.
    if (overload && now - tenant.lastDecrease >= DECREASE_INTERVAL_MS) {
      tenant.scale = Math.max(this.minScale, tenant.scale / 2);
      tenant.lastDecrease = now;
      tenant.lastChange = now;
    } else if (tenant.scale < 1) {
      tenant.lastChange = now; // still overloaded: no recovery yet
    }
    const holdMs = clampRetryAfter(retryAfterMs);
    if (conversationId !== undefined && holdMs !== undefined)
      this.conversation(conversationId, now).block(now + holdMs);
  }

  /** The tenant's current fraction of its limit (1 = unthrottled); for logs and tests. */
  scaleOf(tenantId: string): number {
    return this.tenant(tenantId, this.now()).scale;
  }

  /** How many conversations and tenants are paced now (for tests and metrics). */
  sizes(): { conversations: number; tenants: number } {
    return { conversations: this.conversations.size, tenants: this.tenants.size };
  }

  private tenant(tenantId: string, now: number): TenantPace {
    const key = tenantId.toLowerCase();
    let pace = this.tenants.get(key);
    if (pace === undefined) {
      pace = {
        limiter: new SlidingWindowLimiter(this.perTenant),
        starts: new SlidingWindowLimiter(this.perTenant, false, this.gateSlackMs),
        scale: 1,
        lastChange: now,
        lastDecrease: -Infinity,
        last429: -Infinity,
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
      this.forgetIdle(now);
      limiter = new SlidingWindowLimiter(this.perConversation);
      this.conversations.set(conversationId, limiter); // evicts the LRU one over the bound
    }
    return limiter;
  }

  /** Drops idle conversations from the old end of the LRU map: O(1) per call, never a scan. */
  private forgetIdle(now: number): void {
    for (let i = 0; i < SWEEP_PER_INSERT; i++) {
      const oldest = this.conversations.oldest();
      if (oldest === undefined || !oldest[1].idle(now)) return;
      this.conversations.delete(oldest[0]);
    }
  }
}

/** Retry-After as a hold in ms: finite, at least 0, at most `MAX_RETRY_AFTER_MS`. */
export function clampRetryAfter(ms: number | undefined): number | undefined {
  if (ms === undefined || Number.isNaN(ms)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}
