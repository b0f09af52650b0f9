import {
  createsTablesOnFirstUse,
  isRestError,
  TableFactory,
  TABLES,
} from "../../shared/store/table-factory";
import { testConfig } from "../support/test-config";

describe("TableFactory", () => {
  it("creates a table on first use and reads back what was written to Azurite", async () => {
    const factory = new TableFactory(testConfig());
    const users = await factory.table(TABLES.users);
    await users.createEntity({ partitionKey: "p", rowKey: "r", name: "Ada" });
    const again = await factory.table(TABLES.users);
    expect(again).toBe(users);
    await expect(users.getEntity("p", "r")).resolves.toMatchObject({ name: "Ada" });
  });

  it("opens a table without creating it when the tables are provisioned, so a missing one is TableNotFound", async () => {
    const config = testConfig();
    const provisioned = new TableFactory(config, { createTables: false });
    const users = await provisioned.table(TABLES.users);
    const service = provisioned.serviceClient();
    const names: string[] = [];
    for await (const table of service.listTables()) names.push(table.name ?? "");
    expect(names).not.toContain(provisioned.physicalName(TABLES.users));
    const missing = await users.getEntity("p", "r").catch((error: unknown) => error);
    expect(isRestError(missing, 404, "TableNotFound")).toBe(true);
  });

  it("creates tables on first use for a connection string, not for a managed identity (Bicep's)", () => {
    expect(
      createsTablesOnFirstUse({
        kind: "connectionString",
        connectionString: "UseDevelopmentStorage=true",
      }),
    ).toBe(true);
    expect(
      createsTablesOnFirstUse({
        kind: "identity",
        endpoint: "https://account.table.core.windows.net",
      }),
    ).toBe(false);
    expect(
      createsTablesOnFirstUse({
        kind: "identity",
        endpoint: "https://account.table.core.windows.net",
        clientId: "00000000-0000-0000-0000-000000000000",
      }),
    ).toBe(false);
  });
});
