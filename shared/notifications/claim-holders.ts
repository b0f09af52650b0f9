import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

import { processIsGone, processStartTicks } from "../util/process-liveness";

/**
 * Who holds a delivery claim: every process names itself in the claims it writes, so a later
 * reader can tell a claim whose holder is gone from one whose holder may still be sending.
 */
export interface ClaimHolders {
  /** This process, as its claims name it. */
  readonly self: string;
  /** True only when `holder` (another process) is known to have ended: never a guess. */
  isGone(holder: string): boolean;
}

/**
 * A process's id: `<host>/<pid>/<start>/<random>`. The start time (clock ticks since boot, from
 * `/proc/<pid>/stat`; `-` where there is no `/proc`) tells a reused pid from the holder; the
 * random part tells two lives of one process image apart where the start cannot be read.
 */
export function processIdentity(pid: number = process.pid): string {
  return `${hostname()}/${pid}/${processStartTicks(pid) ?? "-"}/${randomBytes(4).toString("hex")}`;
}

/**
 * Holders on this machine, checked against the operating system: for the local broker
 * (`npm start`, the tests, the benchmark), whose consumers are processes on this host. A holder
 * on another host, or whose process cannot be checked, is never called gone.
 */
export function localProcessHolders(self: string = processIdentity()): ClaimHolders {
  const host = hostname();
  return {
    self,
    isGone(holder: string): boolean {
      if (holder === self) return false;
      const parsed = parseIdentity(holder);
      if (parsed === undefined || parsed.host !== host) return false;
      return processIsGone(parsed.pid, parsed.start === "-" ? undefined : parsed.start);
    },
  };
}

/**
 * Holders Herald cannot check by their id (in Azure every instance is its own machine): none is
 * ever called gone this way; the broker's session says more (delivery-claims.ts).
 */
export function remoteHolders(self: string = processIdentity()): ClaimHolders {
  return { self, isGone: () => false };
}

function parseIdentity(holder: string): { host: string; pid: number; start: string } | undefined {
  const [host, pid, start] = holder.split("/");
  const number = Number(pid);
  if (host === undefined || start === undefined || !Number.isSafeInteger(number) || number <= 0)
    return undefined;
  return { host, pid: number, start };
}
