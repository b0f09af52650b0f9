import { readFileSync } from "node:fs";

/**
 * Whether a process of this machine still runs, for locks and claims that name their holder.
 * A pid alone is not enough: Linux reuses pids, so a holder is named by its pid and its start
 * time (field 22 of `/proc/<pid>/stat`, clock ticks since boot; https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html).
 */

/** The start time of `pid` ("self" for this process); undefined without /proc or once it ended. */
export function processStartTicks(pid: number | "self"): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The name in parentheses may hold spaces: count the fields after its closing one.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/**
 * True only when the process is known to have ended: no process has that pid, or the one that
 * has it started at another time than `startTicks` (a later process reusing the pid). A process
 * that cannot be checked (EPERM: another user's) counts as alive: never a guess.
 */
export function processIsGone(pid: number, startTicks: string | undefined): boolean {
  try {
    process.kill(pid, 0); // signal 0 sends nothing: it only asks whether the pid exists
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
  const now = processStartTicks(pid);
  return startTicks !== undefined && now !== undefined && now !== startTicks;
}
