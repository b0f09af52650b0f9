import type { CallHooks } from "../connector/teams-connector";
import type { Pacer } from "./pacing";

/** Whether a paced call may go now, or when its work should come back. */
export type Slot =
  | { readonly kind: "go" }
  /** `reserved`: the slot at `at` is held for this work; it uses it when it comes back. */
  | { readonly kind: "later"; readonly at: Date; readonly reserved?: boolean };

export interface TenantWorkOptions {
  /** The limits the calls go under; undefined: not paced (benchmarks of raw overhead). */
  readonly pacer: Pacer | undefined;
  /** Longest pacing wait spent inside the function; longer ones re-schedule the work. */
  readonly maxWaitMs: number;
  readonly clock: () => Date;
  readonly sleep: (ms: number) => Promise<void>;
}

const GO: Slot = { kind: "go" };
const NO_HOOKS: CallHooks = {};

/**
 * The one runner of a tenant's paced calls: every call Herald makes to Teams (per tenant and per
 * conversation) or to Graph (per tenant and limit) takes its slot here, under the same rule. A
 * slot that comes within `maxWaitMs` is waited for inside the function; a later one is not: the
 * work is scheduled for it and the function returns, because a long sleep would hold the
 * tenant's session (and the instance) while nothing happens. The caller takes the slot of its
 * first call with `slot`, then makes its writes and the call; a call that must follow one
 * already made (the send after its conversation's create) waits with `waitForSlot` however long,
 * since going back to the queue then would waste the first call.
 */
export class TenantWorkRunner {
  constructor(private readonly options: TenantWorkOptions) {}

  get maxWaitMs(): number {
    return this.options.maxWaitMs;
  }

  /**
   * The next slot for `key` (a tenant; Graph's limits add the operation) and `conversationId`
   * (a send's chat), waited for if it comes within `maxWaitMs`; otherwise when to come back.
   */
  async slot(key: string, conversationId?: string): Promise<Slot> {
    const pacer = this.options.pacer;
    if (pacer === undefined) return GO;
    for (;;) {
      const grant = pacer.reserve(key, conversationId, this.options.maxWaitMs);
      if (grant.granted) {
        if (grant.delayMs > 0) await this.options.sleep(grant.delayMs);
        return GO;
      }
      if (grant.delayMs > this.options.maxWaitMs) return this.later(grant.delayMs);
      // The conversation holds the call back for a moment (the tenant's slots stay in order).
      await this.options.sleep(grant.delayMs);
    }
  }

  /** The next slot however far off: for a call that must follow one already made. */
  async waitForSlot(key: string, conversationId?: string): Promise<void> {
    const pacer = this.options.pacer;
    if (pacer === undefined) return;
    for (;;) {
      const grant = pacer.reserve(key, conversationId);
      if (grant.delayMs > 0) await this.options.sleep(grant.delayMs);
      if (grant.granted) return;
    }
  }

  /**
   * A slot queued for in order: work whose slot is beyond the wait holds that slot now and comes
   * back at it with `reservedAt`, then uses it without asking again. Waiters so form a queue as
   * long as the limit makes it, instead of all asking again each time a slot frees up (work
   * quadratic in the number of waiters). Only for keys without a conversation.
   */
  async reservedSlot(key: string, reservedAt: string | undefined): Promise<Slot> {
    const pacer = this.options.pacer;
    if (pacer === undefined) return GO;
    const now = this.options.clock().getTime();
    const reserved = reservedAt === undefined ? NaN : Date.parse(reservedAt);
    if (Number.isFinite(reserved) && reserved - now <= this.options.maxWaitMs) {
      if (reserved > now) await this.options.sleep(reserved - now);
      return GO;
    }
    const grant = pacer.reserve(key);
    if (grant.delayMs <= this.options.maxWaitMs) {
      if (grant.delayMs > 0) await this.options.sleep(grant.delayMs);
      return GO;
    }
    return { kind: "later", at: new Date(now + grant.delayMs), reserved: true };
  }

  /**
   * Waits until a call of `key` may start by the count of calls that actually started (the
   * pacer's gate), right before the call, after the writes that follow its slot. Returns the
   * hook to hand the connector, which tells the gate when the call's request really left.
   */
  async beforeCall(key: string): Promise<CallHooks> {
    const pacer = this.options.pacer;
    if (pacer === undefined) return NO_HOOKS;
    for (;;) {
      const answer = pacer.gate(key);
      if (answer.waitMs === 0) return { onWire: answer.onWire };
      await this.options.sleep(answer.waitMs);
    }
  }

  /** A call was answered 429: the pacer holds the conversation and may slow the tenant. */
  throttled(
    key: string,
    conversationId: string | undefined,
    retryAfterMs: number | undefined,
  ): void {
    this.options.pacer?.throttled(key, conversationId, retryAfterMs);
  }

  private later(delayMs: number): Slot {
    return { kind: "later", at: new Date(this.options.clock().getTime() + delayMs) };
  }
}
