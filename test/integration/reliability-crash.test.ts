import { describeTables, runCrashRecovery } from "../chaos/scenarios/crash-recovery";

/**
 * The short crash-recovery run inside `npm test`: 150 requests, 2 kills, with `npm start`'s own
 * Azurite (the data folder's Azurite process, which every kill of the host leaves running and
 * every restart reuses). `npm run test:chaos` runs the long one (2,000 requests, 6 kills). See
 * docs/reliability.md. HERALD_CRASH_REPORT=1 prints the tables' side of a passing run too.
 */
describe("npm start host under SIGKILL", () => {
  it("finishes every request and recipient as planned after 2 kills, with a second copy only of what was in flight at a kill", async () => {
    const report = await runCrashRecovery({
      requests: 150,
      users: 30,
      kills: 2,
      uptimeMs: [1_000, 2_000],
      seed: 6,
      // Service Bus' default lock: the killed host's locks come back at once (the broker sees its
      // process is gone), and a live host whose event loop stalls (loading botbuilder on a busy
      // machine) keeps its messages instead of getting them a second time beside the first.
      lockDurationMs: 60_000,
      tables: "embedded",
      // A copy of a delivery that meets a killed sender's live claim waits for the claim to expire
      // (two minutes) before it takes over: settling may take that long after a kill.
      settleTimeoutMs: 150_000,
    });
    expect(report.kills).toBe(2);
    if (
      report.lost.length > 0 ||
      report.notTerminal.length > 0 ||
      process.env.HERALD_CRASH_REPORT
    ) {
      console.log(describeTables(report));
    }
    expect(report.lost).toEqual([]);
    expect(report.notTerminal).toEqual([]);
    expect(report.wrongState).toEqual([]);
    expect(report.rejectedWithoutReason).toEqual([]);
    expect(report.sentButMissing).toEqual([]);
    expect(report.receivedButNotSent).toEqual([]);
    expect(report.http500).toBe(0);
    expect(report.deadLettered).toBe(0);
    // Teams has no idempotency key: only a send in flight at a kill may reach Teams twice.
    expect(report.duplicatesNotInFlightKeys).toEqual([]);
    // One Azurite throughout: the first start started it, every restart after a kill reused it.
    expect(report.azuriteProcesses).toBe(1);
    expect(report.azuriteStarts).toBe(1);
    // Every kind of final state was exercised (the plan has all four).
    expect(report.states.sent).toBeGreaterThan(0);
    expect(report.states.unreachable).toBeGreaterThan(0);
    expect(report.states.failed).toBeGreaterThan(0);
    expect(report.rejectedRequests).toBeGreaterThan(0);
  }, 240_000);
});
