import { spawn } from "node:child_process";

import { processIdentity } from "../../shared/notifications/claim-holders";

/** The identity (claim-holders.ts) of a process that ran on this machine and was killed. */
export async function deadProcessIdentity(): Promise<string> {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", () => resolve());
    child.once("error", reject);
  });
  const identity = processIdentity(child.pid);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await exited;
  return identity;
}
