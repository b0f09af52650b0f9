import { randomUUID } from "node:crypto";

import { startAzuriteTables } from "../shared/local-host/azurite";
import { TEST_RUN_VARIABLE } from "./support/leftover-processes";

/** One Azurite Table service for the whole run, on a free port, in memory. */
export default async function globalSetup(): Promise<void> {
  const azurite = await startAzuriteTables();
  process.env.HERALD_TEST_TABLES_CONNECTION = azurite.connectionString;
  // Every process the tests start inherits it: the teardown finds any that outlive the run.
  process.env[TEST_RUN_VARIABLE] = randomUUID();
  // Jest gives each test file its own \`process\` object, so the local broker's filter of Node 22's
  // "SQLite is an experimental feature" warning (shared/queue/local-broker.ts) cannot reach the
  // worker process that prints it: the workers, forked after this, are told to leave it out.
  process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, "--disable-warning=ExperimentalWarning"]
    .filter(Boolean)
    .join(" ");
  (globalThis as { __AZURITE__?: { close(): Promise<void> } }).__AZURITE__ = azurite;
}
