import { readdirSync, readFileSync } from "node:fs";

/** Set by the global setup; every process a test starts inherits it (tests pass it on). */
export const TEST_RUN_VARIABLE = "HERALD_TEST_RUN";

/** Processes a test may start that must not outlive it: Azurite processes, npm start hosts. */
const LONG_LIVED = /azurite-daemon|herald-host|local-host\/bin\/local\.js/;

/** The pids of this run's long-lived processes still running (Linux: read from /proc). */
function leftovers(run: string): number[] {
  const marker = `${TEST_RUN_VARIABLE}=${run}`;
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return found; // not Linux: nothing to check
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!LONG_LIVED.test(cmdline)) continue;
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      if (environ.includes(marker)) found.push(pid);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/**
 * The suite must leave no process behind (an Azurite that outlives its test would run for
 * minutes). Waits a little for processes that are stopping, then kills the rest (they are this
 * run's own) and fails the run, naming them.
 */
export async function failOnLeftoverProcesses(graceMs = 10_000): Promise<void> {
  const run = process.env[TEST_RUN_VARIABLE];
  if (run === undefined) return;
  const deadline = Date.now() + graceMs;
  let left = leftovers(run);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((done) => setTimeout(done, 100));
    left = leftovers(run);
  }
  if (left.length === 0) return;
  const described = left.map((pid) => {
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
    } catch {
      // gone
    }
    return `${pid} ${cmdline}`;
  });
  for (const pid of left) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  throw new Error(
    `the tests left ${left.length} process(es) running (killed now):\n${described.join("\n")}`,
  );
}
