import { getPriority, setPriority } from "node:os";

/**
 * Azurite and the Teams simulator stand in for Table Storage and Teams, services that run on
 * machines of their own in Azure. Here they share two cores with up to eight Herald instances:
 * at K = 8 a CPU profile of Azurite showed it busy for the whole delivery window, Table requests
 * queued there (single reads and writes took 0.5-6 s in a run's first seconds, with no error or
 * retry), and a tenant's deliveries then sat waiting on storage while its Teams slots went unused.
 * That measures the machine, not Herald. So the bench process, which hosts the simulator and
 * spawns Azurite (which inherits its priority), runs at a higher priority, and every Herald
 * worker is set back to the priority the bench started with: instances compete with each other
 * for the cores, as they would on one host, and not with the services they call.
 * `BENCH_STAND_INS=same` keeps everything at one priority (to measure the difference).
 */
const STAND_IN_NICE = -10;

let herald: number | undefined;

/**
 * Raises this process (and what it spawns from now on); returns the niceness the stand-ins run
 * at, or undefined when it could not be raised (not allowed for this user, or turned off).
 */
export function raiseStandIns(): number | undefined {
  if (process.env.BENCH_STAND_INS === "same") return undefined;
  const base = getPriority();
  try {
    setPriority(STAND_IN_NICE);
  } catch {
    return undefined; // needs CAP_SYS_NICE: the run then measures as before, and says so
  }
  herald = base;
  return STAND_IN_NICE;
}

/** Puts a freshly spawned Herald worker back at the bench's starting priority. */
export function asHeraldWorker(pid: number | undefined): void {
  if (herald === undefined || pid === undefined) return;
  try {
    setPriority(pid, herald);
  } catch {
    // it has exited already: nothing runs at the raised priority
  }
}
