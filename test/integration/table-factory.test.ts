import { TableFactory, TABLES } from "../../shared/store/table-factory";
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
});
