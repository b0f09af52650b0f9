import { runFaultStorm } from "../chaos/scenarios/fault-storm";

/**
 * Short fault storms; `npm run test:chaos` runs 1,000 requests each (test/chaos/fault-storm.chaos.ts).
 *
 * Deterministic under load: the proxy's held calls are the storm's timeouts, so the per-call
 * deadline (2 s) is long enough that a loaded machine's slow but answered calls do not time
 * out as well (at 300 ms a busy 2-core runner turned most calls into timeouts and late
 * acceptances, and a recipient could use up its attempts); late acceptances are counted
 * exactly (see runFaultStorm); and the jest timeouts are guards, not measurements.
 */
describe("notification processor in a fault storm", () => {
  it("ends every request sent when 20 % of Teams calls answer 429/502/503/504, time out or drop", async () => {
    const report = await runFaultStorm({
      requests: 150,
      users: 60,
      faultRate: 0.2,
      statuses: [429, 502, 503, 504],
      timeoutShare: 0.15,
      resetShare: 0.1,
      seed: 20,
      maxAttempts: 10,
      callTimeoutMs: 2_000,
    });
    expect(report.lost).toEqual([]);
    expect(report.notTerminal).toEqual([]);
    expect(report.wrongState).toEqual([]);
    expect(report.states.sent).toBe(report.recipients);
    // Only a call Teams accepted after Herald gave up on it may come twice.
    expect(report.duplicates).toBeLessThanOrEqual(report.lateAccepted);
    expect(report.handlerThrows).toBe(0);
    expect(report.injected.timedOut).toBeGreaterThan(0);
    expect(report.maxAttemptsUsed).toBeGreaterThan(1);
  }, 240_000);

  it("records a Teams 500 as failed with its answer (not retried), and every other request sent", async () => {
    const report = await runFaultStorm({
      requests: 100,
      users: 40,
      faultRate: 0.2,
      statuses: [429, 500, 503],
      timeoutShare: 0.15,
      resetShare: 0,
      seed: 21,
      maxAttempts: 10,
      callTimeoutMs: 2_000,
    });
    expect(report.lost).toEqual([]);
    expect(report.notTerminal).toEqual([]);
    expect(report.wrongState).toEqual([]);
    expect(report.states.sent + report.states.failed).toBe(report.recipients);
    expect(report.states.failed).toBeGreaterThan(0);
    expect(report.failedLastErrors.every((e) => e.startsWith("HTTP 500"))).toBe(true);
    // Only a call Teams accepted after Herald gave up on it may come twice.
    expect(report.duplicates).toBeLessThanOrEqual(report.lateAccepted);
  }, 240_000);
});
