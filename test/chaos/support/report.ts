import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** Where `npm run test:chaos` leaves its numbers (git-ignored); HERALD_CHAOS_REPORT overrides. */
export const REPORT_PATH =
  process.env.HERALD_CHAOS_REPORT ??
  resolve(__dirname, "../../../node_modules/.cache/herald/chaos-report.json");

/**
 * Adds one scenario's numbers to the report file and prints them, so the last run's figures
 * can be quoted (docs/reliability.md) without digging through jest's output.
 */
export function report(scenario: string, numbers: Record<string, unknown>): void {
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(readFileSync(REPORT_PATH, "utf8")) as Record<string, unknown>;
  } catch {
    // first scenario of the run, or an unreadable leftover: start afresh
  }
  all[scenario] = { ...numbers, at: new Date().toISOString() };
  mkdirSync(dirname(REPORT_PATH), { recursive: true });
  writeFileSync(REPORT_PATH, `${JSON.stringify(all, null, 2)}\n`);
  process.stdout.write(`\n[chaos] ${scenario}: ${JSON.stringify(numbers)}\n`);
}
