import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { TableClient } from "@azure/data-tables";

import { ConfigError } from "../../shared/errors";
import { stopAzurite } from "../../shared/local-host/azurite-client";
import { isAlive } from "../../shared/local-host/folder-lock";
import { startDevelopmentHost } from "../../shared/local-host/main";
import { AZURITE_FOLDER } from "../../shared/local-host/settings";
import { buildAzuriteDaemon } from "../support/azurite-daemon";

const REGISTRY = resolve(__dirname, "../../shared/registry");

/**
 * A Functions project in miniature: package.json `main` names a built function module that
 * registers through shared/registry.ts, as functions/*.ts do.
 */
function makeProject(localSettings?: unknown): string {
  const root = mkdtempSync(join(tmpdir(), "herald-start-"));
  writeFileSync(
    join(root, "package.json"),
    JSON.stringify({ name: "fixture", main: "dist/functions/*.js" }),
  );
  writeFileSync(join(root, "host.json"), JSON.stringify({ version: "2.0" }));
  mkdirSync(join(root, "dist", "functions"), { recursive: true });
  writeFileSync(
    join(root, "dist", "functions", "hello.js"),
    `const { registerHttp } = require(${JSON.stringify(REGISTRY)});
     registerHttp("hello", {
       methods: ["GET"],
       route: "hello",
       handler: () => ({ body: "hi " + process.env.Greeting }),
     });`,
  );
  writeFileSync(
    join(root, "dist", "functions", "work.js"),
    `require(${JSON.stringify(REGISTRY)}).registerServiceBusQueue("work", {
       queueName: "%NotificationsQueueName%",
       connection: "ServiceBusConnection",
       handler: () => undefined,
     });`,
  );
  writeFileSync(join(root, "dist", "functions", "hello.js.map"), "{}"); // not a function file
  if (localSettings !== undefined) {
    writeFileSync(
      join(root, "local.settings.json"),
      typeof localSettings === "string" ? localSettings : JSON.stringify(localSettings),
    );
  }
  return root;
}

function lockHolder(root: string): number {
  return (
    JSON.parse(readFileSync(join(root, AZURITE_FOLDER, "herald.pid"), "utf8")) as { pid: number }
  ).pid;
}

describe("npm start (startDevelopmentHost)", () => {
  const roots: string[] = [];
  const savedEnv = { ...process.env };
  // The Azurite process's script, as npm start's build puts it beside the host. A short idle
  // time: a test that fails half-way leaves no Azurite behind for long.
  let azuriteDaemon = "";
  const azuriteIdleMs = 20_000;

  beforeAll(() => {
    azuriteDaemon = buildAzuriteDaemon();
  });

  afterAll(() => rmSync(azuriteDaemon, { force: true }));

  afterEach(async () => {
    // The host writes the settings into process.env, where the functions read them.
    for (const key of Object.keys(process.env)) {
      if (!(key in savedEnv)) delete process.env[key];
    }
    Object.assign(process.env, savedEnv);
    for (const root of roots.splice(0)) {
      // Azurite outlives the hosts (as Table Storage would): stop it before the folder goes.
      await stopAzurite(join(root, AZURITE_FOLDER), { force: true });
      rmSync(root, { recursive: true, force: true });
    }
  });

  function project(localSettings?: unknown): string {
    const root = makeProject(localSettings);
    roots.push(root);
    return root;
  }

  it("serves the functions package.json names with local.settings.json applied, and says the bot is anonymous", async () => {
    const root = project({ Values: { Greeting: "from the file", TableNamePrefix: "File" } });
    const lines: string[] = [];
    const running = await startDevelopmentHost({
      projectRoot: root,
      env: { TableNamePrefix: "Env" },
      port: 0,
      azuritePort: 0,
      azuriteDaemon,
      azuriteIdleMs,
      out: (line) => lines.push(line),
      logHandlerFor: () => () => undefined,
    });
    let azuritePid: number;
    try {
      const url = `${running.host.http.origin}/api/hello`;
      const response = await fetch(url);
      expect(await response.text()).toBe("hi from the file");
      expect(running.config.tableNamePrefix).toBe("Env"); // the environment wins
      expect(running.config.localQueueDirectory).toBe(join(root, ".data", "queue"));
      expect(running.azurite).toBeDefined();
      expect(existsSync(join(root, ".data", "azurite", "herald.pid"))).toBe(true);
      // The queue trigger drains the local queue, dead-lettering where Azure's queue would.
      const [work] = running.host.queues;
      expect(work?.functionName).toBe("work");
      expect(work?.queue.description).toBe(
        `local queue "notifications" in ${join(root, ".data", "queue", "broker.db")}`,
      );
      expect(work?.queue.maxDeliveryCount).toBe(running.config.maxDeliveryAttempts);
      const banner = lines.join("\n");
      expect(banner).toContain(`hello  [GET] ${url}`);
      expect(banner).toContain("WARNING: MicrosoftAppId is not set");
      expect(banner).toContain("environment overrides local.settings.json for TableNamePrefix");
      expect(banner).toMatch(
        /Table Storage: Azurite http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1, tables in \.data\/azurite/,
      );
      // Azurite runs as a process of its own, which holds the data folder.
      azuritePid = lockHolder(root);
      expect(azuritePid).not.toBe(process.pid);
      expect(running.azurite?.pid).toBe(azuritePid);
      expect(banner).toContain(`Azurite process ${azuritePid}: started by this npm start`);
      expect(banner).toContain("or now with: npm run azurite:stop");
    } finally {
      await running.close();
    }
    await expect(fetch(`${running.host.http.origin}/api/hello`)).rejects.toThrow();
    // The host is gone; its tables are not: Azurite still serves the folder.
    expect(isAlive(azuritePid)).toBe(true);
    expect(lockHolder(root)).toBe(azuritePid);
  });

  it("keeps table data in .data/azurite from one run to the next", async () => {
    const root = project();
    const options = {
      projectRoot: root,
      env: {},
      port: 0,
      azuritePort: 0,
      azuriteDaemon,
      azuriteIdleMs,
      out: () => undefined,
      logHandlerFor: () => () => undefined,
    };
    const first = await startDevelopmentHost(options);
    try {
      const table = TableClient.fromConnectionString(
        first.settings.TableStorageConnection!,
        "KeepMe",
        { allowInsecureConnection: true },
      );
      await table.createTable();
      await table.createEntity({ partitionKey: "p", rowKey: "r", note: "still here" });
    } finally {
      await first.close();
    }
    const second = await startDevelopmentHost(options);
    try {
      expect(second.azurite?.how).toBe("reused");
      expect(second.azurite?.pid).toBe(first.azurite?.pid);
      const table = TableClient.fromConnectionString(
        second.settings.TableStorageConnection!,
        "KeepMe",
        { allowInsecureConnection: true },
      );
      await expect(table.getEntity("p", "r")).resolves.toMatchObject({ note: "still here" });
    } finally {
      await second.close();
    }
  });

  it("uses the Azurite already listening on the port the settings name, starting none", async () => {
    const root = project();
    const lines: string[] = [];
    // The connection string of the Azurite jest's global setup runs: its port is taken.
    const connection = process.env.HERALD_TEST_TABLES_CONNECTION!;
    const port = /127\.0\.0\.1:(\d+)\//.exec(connection)![1];
    const running = await startDevelopmentHost({
      projectRoot: root,
      env: { TableStorageConnection: connection },
      port: 0,
      azuriteDaemon,
      azuriteIdleMs,
      out: (line) => lines.push(line),
      logHandlerFor: () => () => undefined,
    });
    try {
      expect(running.azurite).toBeUndefined();
      expect(running.settings.TableStorageConnection).toBe(connection);
      const banner = lines.join("\n");
      expect(banner).toContain(
        `Port ${port} is in use: using the Azurite already listening there.`,
      );
      expect(banner).toContain("Table Storage: the Azurite already running on the configured port");
      expect(existsSync(join(root, ".data", "azurite", "herald.pid"))).toBe(false);
    } finally {
      await running.close();
    }
  });

  it("refuses a bad setting with a message naming it, and leaves nothing running", async () => {
    const root = project({ Values: { MicrosoftAppId: "not-a-guid" } });
    const attempt = startDevelopmentHost({
      projectRoot: root,
      env: {},
      port: 0,
      azuritePort: 0,
      azuriteDaemon,
      azuriteIdleMs,
      out: () => undefined,
    });
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow(/MicrosoftAppId: must be a GUID/);
    expect(existsSync(join(root, ".data", "azurite", "herald.pid"))).toBe(false);
  });

  it("refuses a local.settings.json that is not valid JSON rather than ignoring it", async () => {
    const root = project("{ Values: ");
    await expect(
      startDevelopmentHost({
        projectRoot: root,
        env: {},
        port: 0,
        azuritePort: 0,
        azuriteDaemon,
        azuriteIdleMs,
        out: () => undefined,
      }),
    ).rejects.toThrow(/local\.settings\.json: not valid JSON/);
  });

  it("starts no Azurite when the settings name another table service", async () => {
    const root = project();
    const lines: string[] = [];
    const running = await startDevelopmentHost({
      projectRoot: root,
      env: { TableStorageConnection__tableServiceUri: "https://contoso.table.core.windows.net" },
      port: 0,
      out: (line) => lines.push(line),
      logHandlerFor: () => () => undefined,
    });
    try {
      expect(running.azurite).toBeUndefined();
      expect(lines.join("\n")).toContain("Table Storage: https://contoso.table.core.windows.net");
    } finally {
      await running.close();
    }
  });
});
