import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { TableClient } from "@azure/data-tables";

import { isAlive } from "../../shared/local-host/folder-lock";
import { buildHostBundle, HostProcess } from "../chaos/support/host-process";

const ROWS = 300;

function table(connection: string, name: string): TableClient {
  return TableClient.fromConnectionString(connection, name, { allowInsecureConnection: true });
}

async function rowCount(client: TableClient): Promise<number> {
  let count = 0;
  for await (const _ of client.listEntities()) count += 1;
  return count;
}

/** The `Azurite process N: started|reused` line of each start, in order. */
function azuriteOf(host: HostProcess): { pid: number; how: string }[] {
  return host.startLines().flatMap((line) => {
    const match = /^ {2}Azurite process (\d+): (started|reused)/.exec(line);
    return match === null ? [] : [{ pid: Number(match[1]), how: match[2]! }];
  });
}

/**
 * `npm start` (the same `startDevelopmentHost`, as a child process the test can kill) on the
 * data folder's own Azurite, `.data/azurite`: what a developer sees after a kill -9 or a crash.
 */
describe("npm start's own tables", () => {
  let folder = "";
  let script = "";
  const hosts: HostProcess[] = [];

  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), "herald-tables-"));
    script = buildHostBundle(folder);
  });

  afterEach(async () => {
    for (const host of hosts.splice(0)) await host.crash();
    // The folder's Azurite outlives its hosts: stop it (it saves first) for the next test.
    await new HostProcess({ script, settings: {}, lockDurationMs: 1_000 }).stopTables();
  });

  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  function host(name: string): HostProcess {
    const started = new HostProcess({
      script,
      name,
      // No TableStorageConnection: npm start uses the data folder's own Azurite.
      settings: { TableStorageConnection: "", TableNamePrefix: "crash" },
      lockDurationMs: 1_000,
    });
    hosts.push(started);
    return started;
  }

  it("keeps every write when npm start is killed with SIGKILL: the next start reuses the same Azurite, which never stopped", async () => {
    const herald = host("kill");
    await herald.start();
    const connection = herald.tablesConnection;
    const before = table(connection, "Survivors");
    await before.createTable();
    for (let i = 0; i < ROWS; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) =>
          before.createEntity({ partitionKey: "p", rowKey: String(i + j).padStart(4, "0") }),
        ),
      );
    }
    // Right after the last confirmation: long before any periodic save could have run.
    await herald.crash();

    await herald.start();
    const [first, second] = azuriteOf(herald);
    expect(first?.how).toBe("started");
    expect(second).toEqual({ pid: first?.pid, how: "reused" });
    expect(herald.tablesConnection).toBe(connection);
    expect(await rowCount(table(herald.tablesConnection, "Survivors"))).toBe(ROWS);
    const tables = await herald.tables();
    expect(tables.kind === "running" && tables.status.pid).toBe(first?.pid);
  });

  it("gives a second npm start on the same folder the same tables, and keeps them when the first is killed", async () => {
    const one = host("one");
    await one.start();
    const two = host("two");
    await two.start();
    expect(azuriteOf(two)).toEqual([{ pid: azuriteOf(one)[0]?.pid, how: "reused" }]);
    expect(two.startLines().join("\n")).toContain("1 other npm start attached");
    expect(two.tablesConnection).toBe(one.tablesConnection);
    const shared = table(one.tablesConnection, "Shared");
    await shared.createTable();
    await shared.createEntity({ partitionKey: "p", rowKey: "from-one" });

    await one.crash();
    const seen = table(two.tablesConnection, "Shared");
    await expect(seen.getEntity("p", "from-one")).resolves.toBeDefined();
    const tables = await two.tables();
    expect(tables.kind === "running" && tables.status.hosts).toHaveLength(1);
  });

  it("stops npm start with exit code 1, saying why, when its Azurite is stopped under it", async () => {
    const herald = host("orphaned");
    await herald.start();
    const [azurite] = azuriteOf(herald);
    await herald.stopTables();
    expect(isAlive(azurite!.pid)).toBe(false);
    expect(await herald.exitCode()).toBe(1);
    expect(herald.logLines(/Table Storage is gone/)).not.toEqual([]);
    expect(herald.logLines(/Azurite stopped: asked to stop/)).not.toEqual([]);
  });
});
