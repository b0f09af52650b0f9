import {
  GLOBAL_PER_BOT_PER_TENANT_LIMIT,
  PER_BOT_PER_CONVERSATION_LIMITS,
  PER_CONVERSATION_ALL_BOTS_LIMITS,
  type RateWindow,
  type TeamsOperation,
} from "../../shared/teams-limits";

/** Accepted-request times for one key, oldest first, trimmed to the longest window. */
class SlidingLog {
  private times: number[] = [];
  private head = 0;

  constructor(private readonly horizonMs: number) {}

  /** Milliseconds until a request would fit every window, 0 when it fits now. */
  waitMs(now: number, windows: readonly RateWindow[]): number {
    this.trim(now);
    let wait = 0;
    for (const window of windows) {
      const windowMs = window.seconds * 1000;
      const inWindow = this.countSince(now - windowMs);
      if (inWindow < window.limit) continue;
      // The request fits once enough of the oldest in-window entries have aged out.
      const release = this.times[this.times.length - window.limit];
      if (release !== undefined) wait = Math.max(wait, release + windowMs - now);
    }
    return wait;
  }

  add(now: number): void {
    this.times.push(now);
  }

  private countSince(from: number): number {
    // Binary search: the log is sorted because the clock only moves forward.
    let lo = this.head;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.times[mid] ?? 0) > from) hi = mid;
      else lo = mid + 1;
    }
    return this.times.length - lo;
  }

  private trim(now: number): void {
    while (this.head < this.times.length && (this.times[this.head] ?? 0) <= now - this.horizonMs)
      this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }
}

export interface RateCheck {
  readonly operation: TeamsOperation;
  readonly botId: string;
  readonly tenantId: string;
  /** The conversation the operation is about (for create: the 1:1 it creates). */
  readonly conversationId: string;
}

export interface RateVerdict {
  readonly allowed: boolean;
  /** Seconds to wait, rounded up (at least 1) when refused. */
  readonly retryAfterSeconds: number;
  /** Which limit refused it. */
  readonly limit?: "perBotPerConversation" | "perConversationAllBots" | "globalPerBotPerTenant";
}

function horizonOf(windows: readonly RateWindow[]): number {
  return Math.max(1000, ...windows.map((w) => w.seconds * 1000));
}

/**
 * Teams' three layers of limits (see shared/teams-limits.ts). Refused requests do not use up
 * quota, which makes the simulator slightly more forgiving than a service that counts them.
 */
export class TeamsRateLimiter {
  private readonly logs = new Map<string, SlidingLog>();

  check(request: RateCheck, now: number): RateVerdict {
    const layers: {
      key: string;
      windows: readonly RateWindow[];
      limit: NonNullable<RateVerdict["limit"]>;
    }[] = [
      {
        key: `g|${request.botId}|${request.tenantId}`,
        windows: [GLOBAL_PER_BOT_PER_TENANT_LIMIT],
        limit: "globalPerBotPerTenant",
      },
      {
        key: `b|${request.operation}|${request.botId}|${request.conversationId}`,
        windows: PER_BOT_PER_CONVERSATION_LIMITS[request.operation],
        limit: "perBotPerConversation",
      },
      {
        key: `c|${request.operation}|${request.conversationId}`,
        windows: PER_CONVERSATION_ALL_BOTS_LIMITS[request.operation],
        limit: "perConversationAllBots",
      },
    ];
    let worst = 0;
    let refusedBy: RateVerdict["limit"];
    const logs = layers.map((layer) => {
      let log = this.logs.get(layer.key);
      if (log === undefined) {
        log = new SlidingLog(horizonOf(layer.windows));
        this.logs.set(layer.key, log);
      }
      const wait = layer.windows.length === 0 ? 0 : log.waitMs(now, layer.windows);
      if (wait > worst) {
        worst = wait;
        refusedBy = layer.limit;
      }
      return log;
    });
    if (worst > 0)
      return {
        allowed: false,
        retryAfterSeconds: Math.max(1, Math.ceil(worst / 1000)),
        limit: refusedBy,
      };
    for (const log of logs) log.add(now);
    return { allowed: true, retryAfterSeconds: 0 };
  }

  reset(): void {
    this.logs.clear();
  }
}
