import { failOnLeftoverProcesses } from "./support/leftover-processes";

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __AZURITE__?: { close(): Promise<void> } }).__AZURITE__?.close();
  await failOnLeftoverProcesses();
}
