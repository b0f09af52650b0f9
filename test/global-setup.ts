import { randomUUID } from "node:crypto";

import { startAzuriteTables } from "../shared/local-host/azurite";
import { TEST_RUN_VARIABLE } from "./support/leftover-processes";

/** One Azurite Table service for the whole run, on a free port, in memory. */
export default async function globalSetup(): Promise<void> {
  const azurite = await startAzuriteTables();
  process.env.HERALD_TEST_TABLES_CONNECTION = azurite.connectionString;
  // Every process the tests start inherits it: the teardown finds any that outlive the run.
  process.env[TEST_RUN_VARIABLE] = randomUUID();
  (globalThis as { __AZURITE__?: { close(): Promise<void> } }).__AZURITE__ = azurite;
}
