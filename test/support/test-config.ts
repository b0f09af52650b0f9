import { randomBytes } from "node:crypto";

import { type Config, loadConfig } from "../../shared/config";

/**
 * A config pointing at the Azurite started by the global setup, with a table prefix of its
 * own so tests running side by side never see each other's rows.
 */
export function testConfig(overrides: Record<string, string> = {}): Config {
  const connection = process.env.HERALD_TEST_TABLES_CONNECTION;
  if (connection === undefined)
    throw new Error("Azurite is not running: jest global setup missing");
  return loadConfig({
    TableStorageConnection: connection,
    TableNamePrefix: `t${randomBytes(5).toString("hex")}`,
    ...overrides,
  });
}
