import { loadConfig } from "../../shared/config";
import { MissingTableError } from "../../shared/errors";
import { NotificationRequestStore } from "../../shared/store/notification-requests";
import { createsTablesOnFirstUse, TableFactory, TABLES } from "../../shared/store/table-factory";
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

  it("opens a table without creating it when the tables are provisioned, and a missing one is a clear error, not a missing row", async () => {
    const config = testConfig();
    const provisioned = new TableFactory(config, { createTables: false });
    const users = await provisioned.table(TABLES.users);
    const names: string[] = [];
    for await (const table of provisioned.serviceClient().listTables())
      names.push(table.name ?? "");
    expect(names).not.toContain(provisioned.physicalName(TABLES.users));

    const missing = await users.getEntity("p", "r").catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(MissingTableError);
    expect((missing as Error).message).toContain(provisioned.physicalName(TABLES.users));
    expect((missing as Error).message).toContain("deploy infra/");
    // What a store asks: a status read must not answer "no such request".
    const requests = new NotificationRequestStore(provisioned);
    await expect(requests.get({ tenantId: "t", id: "r" })).rejects.toBeInstanceOf(
      MissingTableError,
    );
  });

  it("opens tables on a managed identity without a request, since Bicep created them", async () => {
    const onIdentity = new TableFactory(
      loadConfig({
        TableStorageConnection__tableServiceUri: "https://127.0.0.1:1",
        TableNamePrefix: "Herald",
      }),
    );
    // Port 1 answers nothing: a create (or the token it needs first) would reject.
    const users = await onIdentity.table(TABLES.users);
    expect(users.tableName).toBe("HeraldUsers");
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
