import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { TableClient } from "@azure/data-tables";

import { folderLockHolder, isAlive } from "../../shared/local-host/folder-lock";
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

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not true after ${timeoutMs} ms`);
    await new Promise((done) => setTimeout(done, 25));
  }
}

/**
 * `npm start` (the same `startDevelopmentHost`, as a child process the test can kill) with its
 * own Azurite, data in `.data/azurite`: what a developer sees after a kill -9 or a crash.
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
    // Killed hosts' Azurite processes save and exit by themselves.
    await new HostProcess({ script, settings: {}, lockDurationMs: 1_000 }).tablesReleased();
  });

  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  function host(name: string): HostProcess {
    const started = new HostProcess({
      script,
      name,
      // No TableStorageConnection: npm start runs its own Azurite.
      settings: { TableStorageConnection: "", TableNamePrefix: "crash" },
      lockDurationMs: 1_000,
    });
    hosts.push(started);
    return started;
  }

  it("keeps every write Azurite confirmed when npm start is killed with SIGKILL, for the next start", async () => {
    const herald = host("kill");
    await herald.start();
    const before = table(herald.tablesConnection, "Survivors");
    await before.createTable();
    for (let i = 0; i < ROWS; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) =>
          before.createEntity({ partitionKey: "p", rowKey: String(i + j).padStart(4, "0") }),
        ),
      );
    }
    const azurite = folderLockHolder(join(herald.root, ".data", "azurite"));
    // Right after the last confirmation: long before any periodic save could have run.
    await herald.crash();

    // At once: the new start waits for the killed host's Azurite if it is still saving.
    await herald.start();
    expect(herald.logLines(/in memory/)).toEqual([]);
    expect(await rowCount(table(herald.tablesConnection, "Survivors"))).toBe(ROWS);
    // The killed host's Azurite exited by itself once it had saved.
    expect(azurite).toBeDefined();
    await until(() => !isAlive(azurite!.pid));
  });

  it("gives a second npm start on the same folder tables in memory, leaving the first one's alone", async () => {
    const first = host("first");
    await first.start();
    const firstTable = table(first.tablesConnection, "Shared");
    await firstTable.createTable();
    await firstTable.createEntity({ partitionKey: "p", rowKey: "first" });
    const holder = folderLockHolder(join(first.root, ".data", "azurite"));

    const second = host("second");
    await second.start();
    expect(
      second.logLines(/is in use by another npm start .*: this one keeps its tables in memory/),
    ).toHaveLength(1);
    expect(second.logLines(/Table Storage: Azurite .*, data in memory only/)).toHaveLength(1);
    expect(second.tablesConnection).not.toBe(first.tablesConnection);
    const secondTable = table(second.tablesConnection, "Shared");
    await secondTable.createTable();
    await secondTable.createEntity({ partitionKey: "p", rowKey: "second" });
    await second.crash();

    // The first one's Azurite still holds the folder and still has its row.
    expect(folderLockHolder(join(first.root, ".data", "azurite"))).toEqual(holder);
    await expect(firstTable.getEntity("p", "first")).resolves.toBeDefined();

    await first.crash();
    await first.start();
    const again = table(first.tablesConnection, "Shared");
    await expect(again.getEntity("p", "first")).resolves.toBeDefined();
    await expect(again.getEntity("p", "second")).rejects.toMatchObject({ statusCode: 404 });
  });
});
