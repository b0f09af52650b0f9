import { runFaultStorm } from "./scenarios/fault-storm";
import { report } from "./support/report";

describe("notification processor in a fault storm", () => {
  it("ends all 1,000 requests sent when 20 % of Teams calls answer 429/502/503/504, time out or drop", async () => {
    const result = await runFaultStorm({
      requests: 1_000,
      users: 300,
      faultRate: 0.2,
      statuses: [429, 502, 503, 504],
      timeoutShare: 0.15,
      resetShare: 0.1,
      seed: 2026,
      maxAttempts: 10,
      callTimeoutMs: 1_000,
    });
    const { duplicateCopies: _t, ...numbers } = result;
    report("fault-storm (transient faults)", numbers);
    expect(result.lost).toEqual([]);
    expect(result.notTerminal).toEqual([]);
    expect(result.wrongState).toEqual([]);
    expect(result.states.sent).toBe(result.recipients);
    // Only a call Teams accepted after Herald gave up on it may come twice.
    expect(result.duplicates).toBeLessThanOrEqual(result.lateAccepted);
    expect(result.handlerThrows).toBe(0);
    expect(result.observedFaultRate).toBeGreaterThan(0.15);
  });

  it("ends every request sent or, where Teams answered 500, failed with that answer, never pending", async () => {
    const result = await runFaultStorm({
      requests: 1_000,
      users: 300,
      faultRate: 0.2,
      statuses: [429, 500, 503],
      timeoutShare: 0.15,
      resetShare: 0,
      seed: 7,
      maxAttempts: 10,
      callTimeoutMs: 1_000,
    });
    const { duplicateCopies: _t, ...numbers } = result;
    report("fault-storm (with 500s)", {
      ...numbers,
      failedLastErrors: numbers.failedLastErrors.length,
    });
    expect(result.lost).toEqual([]);
    expect(result.notTerminal).toEqual([]);
    expect(result.wrongState).toEqual([]);
    expect(result.states.sent + result.states.failed).toBe(result.recipients);
    expect(result.states.failed).toBeGreaterThan(0);
    expect(result.failedLastErrors.every((e) => e.startsWith("HTTP 500"))).toBe(true);
    // Only a call Teams accepted after Herald gave up on it may come twice.
    expect(result.duplicates).toBeLessThanOrEqual(result.lateAccepted);
    expect(result.handlerThrows).toBe(0);
  });
});
