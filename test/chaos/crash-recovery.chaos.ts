import { runCrashRecovery } from "./scenarios/crash-recovery";
import { report } from "./support/report";

/**
 * 2,000 requests through the `npm start` host while it is killed with SIGKILL 6 times.
 * Tables: `npm start`'s own Azurite (its child process, data in `.data/azurite`), which must
 * keep every write it confirmed across the kills; HERALD_CHAOS_TABLES=shared uses an Azurite
 * the host does not own instead (as Table Storage outlives a Functions host in Azure), and
 * HERALD_CHAOS_TABLES=in-process Azurite inside the killed host (fails: docs/reliability.md).
 */
describe("npm start host under repeated SIGKILL", () => {
  it("finishes all 2,000 requests and their recipients as planned, with at most one duplicate per kill", async () => {
    const mode = process.env.HERALD_CHAOS_TABLES;
    const tables = mode === "shared" || mode === "in-process" ? mode : "embedded";
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
    expect(result.tablesInMemory).toBe(0);
  });
});
