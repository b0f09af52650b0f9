import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { TableClient } from "@azure/data-tables";

import { LocalTablesError } from "../../shared/errors";
import {
  attachAzurite,
  type AttachedAzurite,
  type AttachOptions,
  AZURITE_LOG,
  stopAzurite,
} from "../../shared/local-host/azurite-client";
import { runAzuriteCommand } from "../../shared/local-host/azurite-command";
import { DAEMON_SCRIPT_MARK, isAlive, LOCK_FILE } from "../../shared/local-host/folder-lock";
import { AZURITE_FOLDER } from "../../shared/local-host/settings";
import { buildAzuriteDaemon } from "../support/azurite-daemon";

function table(azurite: AttachedAzurite, name = "Daemon"): TableClient {
  return TableClient.fromConnectionString(azurite.connectionString, name, {
    allowInsecureConnection: true,
  });
}

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms`);
    await new Promise((done) => setTimeout(done, 25));
  }
}

describe("the data folder's Azurite process", () => {
  let daemonScript = "";
  const roots: string[] = [];
  const attached: AttachedAzurite[] = [];
  const strangers: ChildProcess[] = [];

  beforeAll(() => {
    daemonScript = buildAzuriteDaemon();
  });

  afterAll(() => rmSync(daemonScript, { force: true }));

  afterEach(async () => {
    for (const azurite of attached.splice(0)) await azurite.close();
    strangers.splice(0).forEach((child) => child.kill("SIGKILL"));
    for (const root of roots.splice(0)) {
      await stopAzurite(join(root, AZURITE_FOLDER), { force: true });
      rmSync(root, { recursive: true, force: true });
    }
  });

  /** A project root of its own; the tables in `<root>/.data/azurite`, as npm start keeps them. */
  function project(): { root: string; dataDir: string } {
    const root = mkdtempSync(join(tmpdir(), "herald-daemon-"));
    roots.push(root);
    return { root, dataDir: join(root, AZURITE_FOLDER) };
  }

  async function attach(
    dataDir: string,
    options: Partial<AttachOptions> = {},
  ): Promise<AttachedAzurite> {
    const azurite = await attachAzurite({
      dataDir,
      port: 0,
      fallbackToFreePort: true,
      // A safety net: a test that fails half-way leaves no process for long.
      idleMs: 20_000,
      daemonScript,
      ...options,
    });
    attached.push(azurite);
    return azurite;
  }

  async function detach(azurite: AttachedAzurite): Promise<void> {
    attached.splice(attached.indexOf(azurite), 1);
    await azurite.close();
  }

  it("is started when none serves the folder, and reused with its tables by the next host", async () => {
    const { dataDir } = project();
    const first = await attach(dataDir);
    expect(first.how).toBe("started");
    await table(first).createTable();
    await table(first).createEntity({ partitionKey: "p", rowKey: "r", note: "kept" });
    await detach(first);

    const second = await attach(dataDir);
    expect(second.how).toBe("reused");
    expect(second.pid).toBe(first.pid);
    expect(second.tableEndpoint).toBe(first.tableEndpoint);
    await expect(table(second).getEntity("p", "r")).resolves.toMatchObject({ note: "kept" });
  });

  it("stops by itself once no host has been attached for its idle time, with its tables saved", async () => {
    const { dataDir } = project();
    const first = await attach(dataDir, { idleMs: 1_500 });
    await table(first).createTable();
    await table(first).createEntity({ partitionKey: "p", rowKey: "r" });
    await detach(first);
    await until(() => !isAlive(first.pid), "Azurite exited");
    expect(readFileSync(join(dataDir, AZURITE_LOG), "utf8")).toContain(
      "stopping: no npm start attached for 2 s",
    );
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(false);

    const next = await attach(dataDir);
    expect(next.how).toBe("started");
    await expect(table(next).getEntity("p", "r")).resolves.toBeDefined();
  });

  it("refuses npm run azurite:stop while a host is attached; with --force it stops and tells the host why", async () => {
    const { root, dataDir } = project();
    const lost: string[] = [];
    const azurite = await attach(dataDir, { onLost: (how) => lost.push(how) });
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l), root };

    expect(await runAzuriteCommand(["stop"], io)).toBe(1);
    expect(err.join("\n")).toContain(`Azurite is in use by npm start (process ${process.pid})`);
    expect(isAlive(azurite.pid)).toBe(true);

    expect(await runAzuriteCommand(["stop", "--force"], io)).toBe(0);
    expect(out.join("\n")).toContain(`Azurite process ${azurite.pid} saved the tables`);
    expect(isAlive(azurite.pid)).toBe(false);
    await until(() => lost.length > 0, "the host heard");
    expect(lost).toEqual([
      `Azurite's process (${azurite.pid}) Azurite stopped: asked to stop (npm run azurite:stop)`,
    ]);
  });

  it("says which hosts are attached and what is saved (npm run azurite:status)", async () => {
    const { root, dataDir } = project();
    const azurite = await attach(dataDir);
    await table(azurite).createTable();
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l), root };
    expect(await runAzuriteCommand(["status"], io)).toBe(0);
    const text = out.join("\n");
    expect(text).toContain(`Azurite process ${azurite.pid} serves .data/azurite: ready`);
    expect(text).toContain(`npm start processes attached: ${process.pid}`);
    expect(text).toMatch(/tables: .*__azurite_db_table__\.json, \d+ saves since it was ready/);
  });

  it("keeps every write it confirmed when it is stopped in the middle of a save", async () => {
    const { dataDir } = project();
    // A database large enough that a save takes a while, saved as often as LokiJS can: every
    // stop below finds a save in flight, which LokiJS's close() alone would not wait for.
    const options = { autosaveIntervalMs: 1 };
    const seed = await attach(dataDir, options);
    await table(seed).createTable();
    for (let i = 0; i < 2_000; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) =>
          table(seed).createEntity({
            partitionKey: "bulk",
            rowKey: `${i + j}`,
            pad: "x".repeat(400),
          }),
        ),
      );
    }
    await detach(seed);
    for (let round = 0; round < 6; round++) {
      const azurite = await attach(dataDir, options);
      await table(azurite).createEntity({ partitionKey: "probe", rowKey: `round-${round}` });
      await detach(azurite);
      expect(await stopAzurite(dataDir, { force: false })).toEqual({
        kind: "stopped",
        pid: azurite.pid,
      });
    }
    const last = await attach(dataDir);
    const probes: string[] = [];
    for await (const entity of table(last).listEntities({
      queryOptions: { filter: "PartitionKey eq 'probe'" },
    })) {
      probes.push(entity.rowKey!);
    }
    expect(probes.sort()).toEqual(Array.from({ length: 6 }, (_, r) => `round-${r}`));
  });

  it("exits without writing anything when its folder is deleted under it", async () => {
    const { dataDir } = project();
    const lost: string[] = [];
    const azurite = await attach(dataDir, { onLost: (how) => lost.push(how) });
    await table(azurite).createTable();
    await table(azurite).createEntity({ partitionKey: "p", rowKey: "r" });
    rmSync(dataDir, { recursive: true, force: true });
    await until(() => lost.length > 0, "the host heard");
    await until(() => !isAlive(azurite.pid), "Azurite exited");
    expect(existsSync(dataDir)).toBe(false);
    expect(lost).toEqual([`Azurite's process (${azurite.pid}) went away (killed?)`]);
  });

  it("names the process and fails, tables in memory never, when the folder is held by a live process that does not answer", async () => {
    const { dataDir } = project();
    // A live process whose command line looks like an Azurite of Herald's, on no control port.
    const stranger = spawn(
      process.execPath,
      ["-e", "setTimeout(() => {}, 60000)", DAEMON_SCRIPT_MARK],
      {
        stdio: "ignore",
      },
    );
    strangers.push(stranger);
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      join(dataDir, LOCK_FILE),
      JSON.stringify({ pid: stranger.pid, controlPort: 9, protocol: 1, startedAt: "" }),
    );
    const attempt = attach(dataDir, { readyTimeoutMs: 1_000 });
    await expect(attempt).rejects.toThrow(LocalTablesError);
    await expect(attempt).rejects.toThrow(
      `is held by process ${stranger.pid} (its herald.pid), which did not answer as its Azurite on port 9`,
    );
  });
});
