import fc from "fast-check";

import { parseRetryAfter } from "../../shared/connector/teams-connector";
import { retryDelayMs } from "../../shared/notifications/backoff";
import {
  MAX_PACED_CONVERSATIONS,
  MAX_PACED_TENANTS,
  Pacer,
  SlidingWindowLimiter,
} from "../../shared/notifications/pacing";
import {
  GLOBAL_PER_BOT_PER_TENANT_LIMIT,
  PER_BOT_PER_CONVERSATION_LIMITS,
  type RateWindow,
} from "../../shared/teams-limits";

/** Grants `count` calls as fast as the limiter allows; returns their start times. */
function grantTimes(
  pacer: Pacer,
  clock: { now: number },
  count: number,
  conversationId?: string,
): number[] {
  const times: number[] = [];
  while (times.length < count) {
    const grant = pacer.reserve("tenant", conversationId);
    if (grant.granted) times.push(clock.now + grant.delayMs);
    else clock.now += grant.delayMs; // as a caller does: wait, then ask again
  }
  return times;
}

/** The most calls in any window of `seconds` (closed at the start, open at the end). */
function busiestWindow(times: readonly number[], seconds: number): number {
  let most = 0;
  for (let i = 0; i < times.length; i++) {
    let n = 0;
    for (let j = i; j < times.length && times[j]! < times[i]! + seconds * 1000; j++) n++;
    most = Math.max(most, n);
  }
  return most;
}

/**
 * Calls that come to the gate at their slots and leave `delay(slot)` ms after passing it (a
 * handshake, a socket write); returns when they left, in order. Each is told to its gate when
 * `reportWire`, as the connector does.
 */
function wireTimesThroughGate(
  slots: readonly number[],
  delay: (slot: number) => number,
  options: { reportWire: boolean; gateMargin?: number; gateSlackMs?: number },
): number[] {
  const clock = { now: Math.min(...slots) };
  const pacer = new Pacer({
    now: () => clock.now,
    ...(options.gateMargin !== undefined ? { gateMargin: options.gateMargin } : {}),
    ...(options.gateSlackMs !== undefined ? { gateSlackMs: options.gateSlackMs } : {}),
  });
  const events: { at: number; kind: "gate" | "wire"; slot: number }[] = slots.map((at) => ({
    at,
    kind: "gate",
    slot: at,
  }));
  const answers = new Map<number, () => void>();
  const left: number[] = [];
  while (events.length > 0) {
    events.sort((a, b) => a.at - b.at);
    const event = events.shift()!;
    clock.now = Math.max(clock.now, event.at);
    if (event.kind === "wire") {
      left.push(clock.now);
      if (options.reportWire) answers.get(event.slot)!();
      continue;
    }
    const answer = pacer.gate("tenant");
    if (answer.waitMs > 0) events.push({ ...event, at: clock.now + answer.waitMs });
    else {
      answers.set(event.slot, answer.onWire);
      events.push({ at: clock.now + delay(event.slot), kind: "wire", slot: event.slot });
    }
  }
  return left.sort((a, b) => a - b);
}

describe("SlidingWindowLimiter", () => {
  it("keeps every window within its limit at once", () => {
    const windows: RateWindow[] = [
      { seconds: 1, limit: 7 },
      { seconds: 2, limit: 8 },
      { seconds: 30, limit: 60 },
    ];
    const limiter = new SlidingWindowLimiter(windows);
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const at = limiter.earliest(0);
      limiter.take(at);
      times.push(at);
    }
    for (const w of windows) expect(busiestWindow(times, w.seconds)).toBeLessThanOrEqual(w.limit);
    // ...and uses them: 60 calls fit in the first 30 s, so the 61st waits for the 30 s window.
    expect(times[59]!).toBeLessThan(30_000);
    expect(times[60]!).toBeGreaterThan(30_000);
  });

  it("gives a released slot to the next caller", () => {
    const limiter = new SlidingWindowLimiter([{ seconds: 1, limit: 1 }]);
    const first = limiter.earliest(0);
    limiter.take(first);
    expect(limiter.earliest(0)).toBeGreaterThan(1000);
    limiter.release(first);
    expect(limiter.earliest(0)).toBe(0);
  });
});

describe("Pacer", () => {
  it("paces a tenant a little under Teams' 50 requests per second", () => {
    const clock = { now: 1_000_000 };
    const pacer = new Pacer({ now: () => clock.now });
    const times = grantTimes(pacer, clock, 500);
    const busiest = busiestWindow(times, 1);
    expect(busiest).toBeLessThan(GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit);
    expect(busiest).toBeGreaterThanOrEqual(
      Math.floor(GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit * 0.95),
    );
  });

  it("spreads a tenant's calls over the second instead of granting them in one burst", () => {
    const clock = { now: 0 };
    const pacer = new Pacer({ now: () => clock.now });
    const times = grantTimes(pacer, clock, 48);
    // 48 calls a second, evenly: about one every 21 ms, so at most 5 in any 100 ms.
    expect(busiestWindow(times, 0.1)).toBeLessThanOrEqual(5);
  });

  it("lets no second of real call starts exceed the tenant's limit when the work between slot and call varies", () => {
    const clock = { now: 1_000_000 };
    const pacer = new Pacer({ now: () => clock.now });
    const slots = grantTimes(pacer, clock, 600);
    // The claim and storage writes between a slot and its call take 5-150 ms on a busy machine
    // (a fixed seed: the same run every time).
    let seed = 42;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const arrivals = slots.map((at) => at + 5 + Math.floor(random() * 145));
    // Without the gate these would be the call starts: some second holds more than the limit.
    expect(
      busiestWindow(
        [...arrivals].sort((a, b) => a - b),
        1,
      ),
    ).toBeGreaterThan(GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit);
    const waiting = [...arrivals];
    const starts: number[] = [];
    while (waiting.length > 0) {
      waiting.sort((a, b) => a - b);
      clock.now = Math.max(clock.now, waiting.shift()!);
      const wait = pacer.gate("tenant").waitMs;
      if (wait === 0) starts.push(clock.now);
      else waiting.push(clock.now + wait); // as beforeCall does: sleep, then ask again
    }
    expect(starts).toHaveLength(600);
    expect(busiestWindow(starts, 1)).toBeLessThanOrEqual(GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit);
  });

  it("counts a call when its request left, so calls slowed by new connections do not reach Teams bunched with later ones", () => {
    const clock = { now: 1_000_000 };
    const slots = grantTimes(new Pacer({ now: () => clock.now }), clock, 300);
    const first = slots[0]!;
    // The calls of the first second open new connections (a 70 ms handshake on a busy
    // process); later ones reuse kept-alive sockets and leave at once.
    const handshake = (slot: number) => (slot < first + 1_000 ? 70 : 0);
    const counted = wireTimesThroughGate(slots, handshake, { reportWire: false });
    expect(counted).toHaveLength(300);
    // Counted where they began, the late first calls and the prompt later ones share a second
    // beyond Teams' limit.
    expect(busiestWindow(counted, 1)).toBeGreaterThan(GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit);
    const told = wireTimesThroughGate(slots, handshake, { reportWire: true });
    expect(told).toHaveLength(300);
    expect(busiestWindow(told, 1)).toBeLessThanOrEqual(GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit);
  });

  it("keeps a tenant at its planned rate when its calls leave a few milliseconds late, at random", () => {
    const clock = { now: 1_000_000 };
    const slots = grantTimes(new Pacer({ now: () => clock.now }), clock, 600);
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    // 0-15 ms: a socket write's callback on a loaded event loop.
    const jitter = new Map(slots.map((slot) => [slot, Math.floor(random() * 15)]));
    const planned = slots.at(-1)! - slots[0]!;
    const left = wireTimesThroughGate(slots, (slot) => jitter.get(slot)!, { reportWire: true });
    expect(busiestWindow(left, 1)).toBeLessThan(GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit);
    expect(left.at(-1)! - left[0]!).toBeLessThan(planned + 20);
    // A gate at the planned rate itself holds calls back, and every hold shifts later windows.
    const tight = wireTimesThroughGate(slots, (slot) => jitter.get(slot)!, {
      reportWire: true,
      gateMargin: 0.96,
    });
    expect(tight.at(-1)! - tight[0]!).toBeGreaterThan(planned + 60);
  });

  it("keeps every one of Teams' seconds within the limit when calls come to the gate in bursts and reach Teams up to 25 ms late", () => {
    const clock = { now: 1_000_000 };
    const slots = grantTimes(new Pacer({ now: () => clock.now }), clock, 600);
    // A busy process: the slots' timers fire late together, every 100 ms (bursts of 4-5), and
    // each call then reaches Teams 0-25 ms after it passed the gate (socket, network, clocks).
    const stalled = slots.map((slot) => Math.ceil(slot / 100) * 100);
    let seed = 11;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const late = new Map(stalled.map((at, i) => [at + i / 1_000, Math.floor(random() * 26)]));
    const keys = [...late.keys()];
    const arrive = (options: { gateSlackMs?: number }) =>
      wireTimesThroughGate(keys, (key) => late.get(key)!, { reportWire: false, ...options });
    expect(busiestWindow(arrive({}), 1)).toBeLessThanOrEqual(GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit);
    // A gate whose windows are Teams' own lets a burst at a full window's end into Teams' next.
    expect(busiestWindow(arrive({ gateSlackMs: 0 }), 1)).toBeGreaterThan(
      GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit,
    );
  });

  it("never holds back a call whose slot came on time", () => {
    const clock = { now: 1_000_000 };
    const pacer = new Pacer({ now: () => clock.now });
    for (const at of grantTimes(pacer, clock, 300)) {
      clock.now = at;
      expect(pacer.gate("tenant").waitMs).toBe(0);
    }
  });

  it("never holds back a call whose slot came on time, at any rate a 429 slowed the tenant to", () => {
    for (const halvings of [1, 2, 3]) {
      const clock = { now: 1_000_000 };
      const pacer = new Pacer({ now: () => clock.now, recoveryMs: 10 * 60_000 });
      for (let i = 0; i < halvings; i += 1) {
        pacer.throttled("tenant", "a:1", 0);
        clock.now += 1_000; // the next 429 within the burst window, after the halving interval
        pacer.throttled("tenant", "a:1", 0);
      }
      expect(pacer.scaleOf("tenant")).toBe(0.5 ** halvings);
      clock.now += 5_000;
      for (const at of grantTimes(pacer, clock, 100)) {
        clock.now = at;
        expect(pacer.gate("tenant").waitMs).toBe(0);
      }
    }
  });

  it("paces one conversation by every documented send window", () => {
    const clock = { now: 0 };
    const pacer = new Pacer({ now: () => clock.now });
    const times = grantTimes(pacer, clock, 100, "a:conversation");
    for (const w of PER_BOT_PER_CONVERSATION_LIMITS.sendToConversation)
      expect(busiestWindow(times, w.seconds)).toBeLessThanOrEqual(w.limit);
  });

  it("does not reserve a slot further away than the caller will wait", () => {
    const clock = { now: 0 };
    const pacer = new Pacer({
      now: () => clock.now,
      perTenant: [{ seconds: 1, limit: 2 }],
      margin: 1,
    });
    pacer.reserve("tenant");
    pacer.reserve("tenant");
    const refused = pacer.reserve("tenant", undefined, 500);
    expect(refused.granted).toBe(false);
    expect(refused.delayMs).toBeGreaterThan(500);
    // Nothing was taken: a patient caller still gets the same slot.
    expect(pacer.reserve("tenant").delayMs).toBe(refused.delayMs);
  });

  it("keeps the tenant's full rate after one lone 429 (it holds only that conversation)", () => {
    const clock = { now: 0 };
    const pacer = new Pacer({ now: () => clock.now });
    pacer.throttled("tenant", "a:1", 2_000);
    expect(pacer.scaleOf("tenant")).toBe(1);
    clock.now += 5_000;
    pacer.throttled("tenant", "a:2", 2_000);
    expect(pacer.scaleOf("tenant")).toBe(1);
  });

  it("halves the tenant's rate on repeated 429s and recovers it slowly", () => {
    const clock = { now: 0 };
    const pacer = new Pacer({ now: () => clock.now, recoveryMs: 10_000, recoveryFactor: 1.25 });
    pacer.throttled("tenant", "a:0", 2_000);
    clock.now += 500;
    pacer.throttled("tenant", "a:1", 2_000);
    expect(pacer.scaleOf("tenant")).toBe(0.5);
    clock.now += 1_000;
    pacer.throttled("tenant", "a:1", 2_000);
    expect(pacer.scaleOf("tenant")).toBe(0.25);
    clock.now += 9_999;
    expect(pacer.scaleOf("tenant")).toBe(0.25);
    clock.now += 1;
    expect(pacer.scaleOf("tenant")).toBeCloseTo(0.3125);
    clock.now += 60_000;
    expect(pacer.scaleOf("tenant")).toBe(1);
  });

  it("halves the rate once for a burst of 429s answered within a second", () => {
    const clock = { now: 0 };
    const pacer = new Pacer({ now: () => clock.now });
    for (let i = 0; i < 5; i++) {
      pacer.throttled("tenant", `a:${i}`, 1_000);
      clock.now += 100;
    }
    expect(pacer.scaleOf("tenant")).toBe(0.5);
  });

  it.each([
    ["a huge number of seconds", 1e20],
    ["infinity", Infinity],
    ["the year 10000", Date.parse("+010000-01-01T00:00:00Z")],
  ])("holds a conversation at most an hour for a Retry-After of %s", (_name, retryAfterMs) => {
    const clock = { now: 1_000_000 };
    const pacer = new Pacer({ now: () => clock.now });
    pacer.throttled("tenant", "a:1", retryAfterMs);
    const held = pacer.reserve("tenant", "a:1");
    expect(held.granted).toBe(false);
    expect(held.delayMs).toBe(60 * 60 * 1000);
    expect(Number.isFinite(new Date(clock.now + held.delayMs).getTime())).toBe(true);
    clock.now += 60 * 60 * 1000;
    expect(pacer.reserve("tenant", "a:1").granted).toBe(true);
  });

  it("keeps at most its bound of conversations and checks at most two per grant over 100,000 conversations", () => {
    const clock = { now: 0 };
    const pacer = new Pacer({ now: () => clock.now });
    // Count idle checks (the only per-conversation work besides the map's O(1) operations).
    const original = SlidingWindowLimiter.prototype.idle;
    let checks = 0;
    SlidingWindowLimiter.prototype.idle = function (this: SlidingWindowLimiter, now: number) {
      checks += 1;
      return original.call(this, now);
    };
    let mostChecks = 0;
    let largest = 0;
    let refused = 0;
    try {
      for (let i = 0; i < 100_000; i++) {
        const before = checks;
        const grant = pacer.reserve("tenant", `a:${i}`);
        if (!grant.granted) refused += 1;
        clock.now += grant.delayMs;
        mostChecks = Math.max(mostChecks, checks - before);
        largest = Math.max(largest, pacer.sizes().conversations);
      }
    } finally {
      SlidingWindowLimiter.prototype.idle = original;
    }
    expect(refused).toBe(0);
    expect(mostChecks).toBeLessThanOrEqual(2);
    expect(largest).toBeLessThanOrEqual(MAX_PACED_CONVERSATIONS);
    expect(pacer.sizes().tenants).toBe(1);
  });

  it("keeps at most its bound of tenants", () => {
    const pacer = new Pacer({ now: () => 0 });
    for (let i = 0; i < MAX_PACED_TENANTS + 500; i++) pacer.reserve(`tenant-${i}`);
    expect(pacer.sizes().tenants).toBe(MAX_PACED_TENANTS);
  });

  it("holds a throttled conversation for its Retry-After without holding back the tenant", () => {
    const clock = { now: 0 };
    const pacer = new Pacer({ now: () => clock.now });
    pacer.throttled("tenant", "a:1", 2_000);
    const held = pacer.reserve("tenant", "a:1");
    expect(held).toMatchObject({ granted: false, delayMs: 2_000 });
    expect(pacer.reserve("tenant", "a:2")).toMatchObject({ granted: true, delayMs: 0 });
    clock.now += 2_000;
    expect(pacer.reserve("tenant", "a:1")).toMatchObject({ granted: true, delayMs: 0 });
  });
});

describe("retryDelayMs", () => {
  it("doubles per attempt, with jitter that only adds time", () => {
    expect(retryDelayMs(1, undefined, () => 0)).toBe(2_000);
    expect(retryDelayMs(2, undefined, () => 0)).toBe(4_000);
    expect(retryDelayMs(3, undefined, () => 0)).toBe(8_000);
    expect(retryDelayMs(3, undefined, () => 0.999)).toBeLessThanOrEqual(10_000);
    expect(retryDelayMs(3, undefined, () => 0.999)).toBeGreaterThan(8_000);
  });

  it("never retries earlier than Retry-After", () => {
    for (const r of [0, 0.5, 0.99])
      expect(retryDelayMs(1, 30_000, () => r)).toBeGreaterThanOrEqual(30_000);
  });

  it("caps the delay", () => {
    expect(retryDelayMs(40, undefined, () => 0)).toBe(600_000);
  });

  it("returns a finite delay within the cap for any attempt, Retry-After and random value", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer(), fc.double()),
        fc.option(fc.double(), { nil: undefined }),
        fc.double(),
        (attempt, retryAfterMs, random) => {
          const delay = retryDelayMs(attempt, retryAfterMs, () => random);
          expect(Number.isFinite(delay)).toBe(true);
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(600_000 * 1.25);
        },
      ),
    );
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-12-01T12:00:00Z");

  it.each([
    ["seconds", "120", 120_000],
    ["fractional seconds", "1.5", 1_500],
    ["an HTTP date", "Tue, 01 Dec 2026 12:00:30 GMT", 30_000],
    ["a date in the past", "Tue, 01 Dec 2020 12:00:30 GMT", 0],
    ["a huge number of seconds", "9".repeat(40), 3_600_000],
    ["a date in the year 10000", "Sat, 01 Jan 10000 00:00:00 GMT", 3_600_000],
  ])("reads %s, clamped to an hour", (_name, header, expected) => {
    expect(parseRetryAfter(header, now)).toBe(expected);
  });

  it("returns undefined or a finite delay within an hour for any header text", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.nat().map(String),
          fc.date().map((d) => (Number.isNaN(d.getTime()) ? "x" : d.toUTCString())),
        ),
        (header) => {
          const ms = parseRetryAfter(header, now);
          if (ms !== undefined) {
            expect(Number.isFinite(ms)).toBe(true);
            expect(ms).toBeGreaterThanOrEqual(0);
            expect(ms).toBeLessThanOrEqual(3_600_000);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
