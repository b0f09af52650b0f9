import { startAzuriteTables } from "../shared/local-host/azurite";

/** One Azurite Table service for the whole run, on a free port, in memory. */
export default async function globalSetup(): Promise<void> {
  const azurite = await startAzuriteTables();
  process.env.HERALD_TEST_TABLES_CONNECTION = azurite.connectionString;
  (globalThis as { __AZURITE__?: { close(): Promise<void> } }).__AZURITE__ = azurite;
}
