import { runCrashRecovery } from "./scenarios/crash-recovery";
import { report } from "./support/report";

/**
 * 2,000 requests through the `npm start` host while it is killed with SIGKILL 6 times.
 * Tables: an Azurite the host does not own (as Table Storage outlives a Functions host in
 * Azure); HERALD_CHAOS_TABLES=embedded kills `npm start`'s own Azurite with it instead
 * (see docs/reliability.md for why that loses writes).
 */
describe("npm start host under repeated SIGKILL", () => {
  it("finishes all 2,000 requests and their recipients as planned, with at most one duplicate per kill", async () => {
    const tables = process.env.HERALD_CHAOS_TABLES === "embedded" ? "embedded" : "shared";
    const result = await runCrashRecovery({
      requests: 2_000,
      users: 100,
      kills: 6,
      uptimeMs: [3_000, 9_000],
      seed: Number(process.env.HERALD_CHAOS_SEED ?? 2026),
      lockDurationMs: 3_000,
      tables,
      settleTimeoutMs: 240_000,
      log: (line) => process.stdout.write(`[chaos] ${line}\n`),
    });
    const { duplicateTimes: _times, ...numbers } = result;
    report(`crash-recovery (${tables} tables)`, {
      ...numbers,
      lost: numbers.lost.slice(0, 20),
      notTerminal: numbers.notTerminal.slice(0, 20),
      lostCount: numbers.lost.length,
      notTerminalCount: numbers.notTerminal.length,
    });
    expect(result.kills).toBeGreaterThanOrEqual(5);
    expect(result.lost).toEqual([]);
    expect(result.notTerminal).toEqual([]);
    expect(result.wrongState).toEqual([]);
    expect(result.rejectedWithoutReason).toEqual([]);
    expect(result.sentButMissing).toEqual([]);
    expect(result.receivedButNotSent).toEqual([]);
    expect(result.http500).toBe(0);
    expect(result.deadLettered).toBe(0);
    expect(result.duplicates).toBeLessThanOrEqual(result.kills);
  });
});
