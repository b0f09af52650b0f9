import { describeTables, runCrashRecovery } from "./scenarios/crash-recovery";
import { report } from "./support/report";

/**
 * 2,000 requests through the `npm start` host while it is killed with SIGKILL 6 times.
 * Tables: `npm start`'s own Azurite (the data folder's Azurite process, `.data/azurite`), which
 * every kill leaves running and every restart reuses; HERALD_CHAOS_TABLES=shared uses an Azurite
 * of the test's instead.
 */
describe("npm start host under repeated SIGKILL", () => {
  it("finishes all 2,000 requests and their recipients as planned, with a second copy only of what was in flight at a kill", async () => {
    const mode = process.env.HERALD_CHAOS_TABLES;
    const tables = mode === "shared" ? mode : "embedded";
    const result = await runCrashRecovery({
      requests: 2_000,
      users: 100,
      kills: 6,
      uptimeMs: [3_000, 9_000],
      seed: Number(process.env.HERALD_CHAOS_SEED ?? 2026),
      // Service Bus' default lock: the killed host's locks come back at once (the broker sees its
      // process is gone), and a live host whose event loop stalls (loading botbuilder on a busy
      // machine) keeps its messages instead of getting them a second time beside the first.
      lockDurationMs: 60_000,
      tables,
      settleTimeoutMs: 240_000,
      log: (line) => process.stdout.write(`[chaos] ${line}\n`),
    });
    const { duplicateCopies: _times, startLines: _lines, azurite: _azurite, ...numbers } = result;
    report(`crash-recovery (${tables} tables)`, {
      ...numbers,
      lost: numbers.lost.slice(0, 20),
      notTerminal: numbers.notTerminal.slice(0, 20),
      lostCount: numbers.lost.length,
      notTerminalCount: numbers.notTerminal.length,
    });
    expect(result.kills).toBeGreaterThanOrEqual(5);
    console.log(describeTables(result));
    expect(result.lost).toEqual([]);
    expect(result.notTerminal).toEqual([]);
    expect(result.wrongState).toEqual([]);
    expect(result.rejectedWithoutReason).toEqual([]);
    expect(result.sentButMissing).toEqual([]);
    expect(result.receivedButNotSent).toEqual([]);
    expect(result.http500).toBe(0);
    expect(result.deadLettered).toBe(0);
    // Teams has no idempotency key: only a send in flight at a kill may reach Teams twice.
    expect(result.duplicatesNotInFlightKeys).toEqual([]);
    if (tables === "embedded") expect(result.azuriteProcesses).toBe(1);
  });
});
