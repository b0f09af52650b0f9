import type { FaultRateSpec, FaultSpec, FaultStatus, RouteName, SimUser } from "./types";

/** Teams' error codes and messages per status (TEAMS-FACTS.md "Status codes"). */
const DEFAULT_ERRORS: Record<number, { code: string; message: string }> = {
  400: { code: "BadArgument", message: "Invalid payload." },
  401: { code: "BotNotRegistered", message: "No registration found for this bot." },
  403: {
    code: "ConversationBlockedByUser",
    message: "User blocked the conversation with the bot.",
  },
  404: { code: "ConversationNotFound", message: "Conversation not found." },
  409: { code: "Conflict", message: "Conflict." },
  412: { code: "PreconditionFailed", message: "Precondition failed, please try again." },
  413: { code: "MessageSizeTooBig", message: "Message size too large." },
  429: { code: "Throttled", message: "Too many requests." },
  500: { code: "ServiceError", message: "An error occurred on the server." },
  502: { code: "ServiceError", message: "Bad gateway." },
  503: { code: "ServiceUnavailable", message: "Service unavailable." },
  504: { code: "GatewayTimeout", message: "Gateway timeout." },
};

export interface TeamsErrorBody {
  error: { code: string; message: string; subCode?: string };
}

export function teamsError(
  status: number,
  code?: string,
  message?: string,
  subCode?: string,
): TeamsErrorBody {
  const fallback = DEFAULT_ERRORS[status] ?? { code: "Error", message: `HTTP ${status}` };
  return {
    error: {
      code: code ?? fallback.code,
      message: message ?? fallback.message,
      ...(subCode === undefined ? {} : { subCode }),
    },
  };
}

/** What a request is about, for faults aimed at one user or conversation. */
export interface FaultTarget {
  readonly route: RouteName;
  readonly conversationId: string | undefined;
  readonly user: SimUser | undefined;
}

interface PendingFault {
  readonly route: RouteName | "*";
  readonly spec: FaultSpec;
  remaining: number;
}

/** mulberry32: tiny, seedable, good enough to make chaos runs repeatable. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultPlan {
  private pending: PendingFault[] = [];
  private rate: FaultRateSpec | undefined;
  private random: () => number;

  constructor(seed: number) {
    this.random = seededRandom(seed);
  }

  failNext(route: RouteName | "*", spec: FaultSpec): void {
    const times = spec.times ?? 1;
    if (!Number.isInteger(times) || times < 1)
      throw new Error("simulator: failNext times must be a positive integer");
    this.pending.push({ route, spec, remaining: times });
  }

  setFaultRate(spec: FaultRateSpec): void {
    if (!(spec.rate >= 0 && spec.rate <= 1))
      throw new Error("simulator: fault rate must be in [0, 1]");
    if (spec.seed !== undefined) this.random = seededRandom(spec.seed);
    this.rate = spec.rate === 0 ? undefined : spec;
  }

  /** The fault this request gets, if any; consumes one use of a `failNext`. */
  take(target: FaultTarget): FaultSpec | undefined {
    const index = this.pending.findIndex(
      (p) => (p.route === "*" || p.route === target.route) && matches(p.spec, target),
    );
    const planned = this.pending[index];
    if (planned !== undefined) {
      planned.remaining -= 1;
      if (planned.remaining === 0) this.pending.splice(index, 1);
      return planned.spec;
    }
    const rate = this.rate;
    if (rate === undefined) return undefined;
    if (rate.routes !== undefined && !rate.routes.includes(target.route)) return undefined;
    if (this.random() >= rate.rate) return undefined;
    const statuses: readonly FaultStatus[] = rate.statuses ?? [429, 500, 502, 503];
    const status = statuses[Math.floor(this.random() * statuses.length)] ?? 503;
    return { status };
  }

  pendingCount(): number {
    return this.pending.reduce((sum, p) => sum + p.remaining, 0);
  }

  reset(): void {
    this.pending = [];
    this.rate = undefined;
  }
}

function matches(spec: FaultSpec, target: FaultTarget): boolean {
  if (spec.conversationId !== undefined && spec.conversationId !== target.conversationId)
    return false;
  if (spec.user !== undefined) {
    const wanted = typeof spec.user === "string" ? spec.user : spec.user.id;
    const user = target.user;
    if (user === undefined) return false;
    if (wanted !== user.id && wanted.toLowerCase() !== user.aadObjectId.toLowerCase()) return false;
  }
  return true;
}
