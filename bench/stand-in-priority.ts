import { readdirSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/**
 * Azurite and the Teams simulator stand in for Table Storage and Teams, which in Azure run on
 * machines of their own; here they share two cores with up to eight Herald instances, and
 * starved by them they made the K = 8 row measure the machine (docs/benchmarks.md, "What runs
 * where"). So the bench process, which hosts the simulator and spawns Azurite, runs 10 nice
 * levels above where it started, and every Herald worker (baselines too, so Herald / baseline
 * ratios stay fair) puts itself back at the starting priority when it starts.
 * `BENCH_STAND_INS=same` keeps everything at one priority, to measure the difference.
 */
const RAISE_BY = 10;
/** The worker's niceness, handed down by the bench (`heraldWorkerEnv`). */
const WORKER_NICE_ENV = "BENCH_HERALD_NICE";

type Decision =
  | { readonly raised: true; readonly standInsNice: number; readonly heraldNice: number }
  | { readonly raised: false; readonly reason: string };

let decision: Decision | undefined;

/**
 * Niceness is per thread on Linux, and `setPriority(pid)` sets only the thread whose id is the
 * pid; threads started later inherit from the thread that starts them. So every thread there
 * is now is set (where /proc lists them).
 */
function setEveryThread(pid: number, nice: number): void {
  let threads: number[];
  try {
    threads = readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    threads = [pid]; // not Linux: the process as the OS counts it
  }
  for (const thread of threads) {
    try {
      setPriority(thread, nice);
    } catch (error) {
      // A thread that ended in between is fine; not being allowed is not. Node throws a
      // SystemError (ERR_SYSTEM_ERROR) whose `info.code` is the errno's name.
      if (errnoOf(error) !== "ESRCH") throw error;
    }
  }
}

function errnoOf(error: unknown): string | undefined {
  const { info, code } = error as { info?: { code?: string }; code?: string };
  return info?.code ?? code;
}

/**
 * Raises this process (and so Azurite, forked from it afterwards). Call it after anything that
 * must run at the machine's own priority (cold-start probes, builds, installs) has run.
 */
export function raiseStandIns(): void {
  if (process.env.BENCH_STAND_INS === "same") {
    decision = { raised: false, reason: "BENCH_STAND_INS=same" };
    return;
  }
  const heraldNice = getPriority();
  const standInsNice = Math.max(-20, heraldNice - RAISE_BY);
  if (standInsNice >= heraldNice) {
    decision = { raised: false, reason: "the bench already runs at the highest priority" };
    return;
  }
  try {
    setEveryThread(process.pid, standInsNice);
    decision = { raised: true, standInsNice, heraldNice };
  } catch (error) {
    setEveryThread(process.pid, heraldNice); // lowering is always allowed: undo any part done
    const errno = errnoOf(error);
    decision = {
      raised: false,
      reason:
        errno === "EACCES" || errno === "EPERM" ? "not permitted for this user" : String(errno),
    };
  }
}

/** What a finished run records about it: nothing before `raiseStandIns` decided. */
export function standInsRecord(): { standInsNice?: number; standIns?: string } {
  if (decision === undefined) return {};
  return decision.raised
    ? {
        standInsNice: decision.standInsNice,
        standIns: `at nice ${decision.standInsNice}, the Herald workers at ${decision.heraldNice} (bench/stand-in-priority.ts)`,
      }
    : { standIns: `at the Herald workers' priority (${decision.reason})` };
}

/** The environment a Herald worker is spawned with, so it can put itself back. */
export function heraldWorkerEnv(): NodeJS.ProcessEnv {
  return decision?.raised === true
    ? { ...process.env, [WORKER_NICE_ENV]: String(decision.heraldNice) }
    : process.env;
}

/** In a worker, first thing: back to the niceness the bench started at, every thread. */
export function runAsHeraldWorker(): void {
  const nice = process.env[WORKER_NICE_ENV];
  if (nice !== undefined) setEveryThread(process.pid, Number(nice));
}
