import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { TableClient } from "@azure/data-tables";

import { ConfigError } from "../../shared/errors";
import { isAlive } from "../../shared/local-host/folder-lock";
import { startDevelopmentHost } from "../../shared/local-host/main";
import { buildAzuriteEntry } from "../support/azurite-entry";

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
  return Number(readFileSync(join(root, ".data", "azurite", "herald.pid"), "utf8").split("\n")[0]);
}

describe("npm start (startDevelopmentHost)", () => {
  const roots: string[] = [];
  const savedEnv = { ...process.env };
  // Azurite's child process script, as `npm run build` puts it beside main.js.
  let azuriteEntry = "";

  beforeAll(() => {
    azuriteEntry = buildAzuriteEntry();
  });

  afterAll(() => rmSync(azuriteEntry, { force: true }));

  afterEach(() => {
    // The host writes the settings into process.env, where the functions read them.
    for (const key of Object.keys(process.env)) {
      if (!(key in savedEnv)) delete process.env[key];
    }
    Object.assign(process.env, savedEnv);
    roots.splice(0).forEach((r) => rmSync(r, { recursive: true, force: true }));
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
      azuriteEntry,
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
      expect(work?.queue.path).toBe(join(root, ".data", "queue", "notifications"));
      expect(work?.queue.maxDeliveryCount).toBe(running.config.maxDeliveryAttempts);
      const banner = lines.join("\n");
      expect(banner).toContain(`hello  [GET] ${url}`);
      expect(banner).toContain("WARNING: MicrosoftAppId is not set");
      expect(banner).toContain("environment overrides local.settings.json for TableNamePrefix");
      expect(banner).toMatch(
        /Table Storage: Azurite http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1, data in \.data\/azurite/,
      );
      // Azurite runs in a child process of its own, which holds the data folder.
      azuritePid = lockHolder(root);
      expect(azuritePid).not.toBe(process.pid);
      expect(banner).toContain(`Azurite runs as process ${azuritePid}`);
    } finally {
      await running.close();
    }
    expect(isAlive(azuritePid)).toBe(false);
    expect(existsSync(join(root, ".data", "azurite", "herald.pid"))).toBe(false);
    await expect(fetch(`${running.host.http.origin}/api/hello`)).rejects.toThrow();
  });

  it("keeps table data in .data/azurite from one run to the next", async () => {
    const root = project();
    const options = {
      projectRoot: root,
      env: {},
      port: 0,
      azuritePort: 0,
      azuriteEntry,
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

  it("runs Azurite inside this process when asked to (tests), still locking the data folder", async () => {
    const root = project();
    const running = await startDevelopmentHost({
      projectRoot: root,
      env: {},
      port: 0,
      azuritePort: 0,
      azurite: "this-process",
      out: () => undefined,
      logHandlerFor: () => () => undefined,
    });
    try {
      expect(lockHolder(root)).toBe(process.pid);
      const table = TableClient.fromConnectionString(
        running.settings.TableStorageConnection!,
        "Here",
        { allowInsecureConnection: true },
      );
      await table.createTable();
      await expect(table.createEntity({ partitionKey: "p", rowKey: "r" })).resolves.toBeDefined();
    } finally {
      await running.close();
    }
    expect(existsSync(join(root, ".data", "azurite", "herald.pid"))).toBe(false);
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
      azuriteEntry,
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
      azuriteEntry,
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
        azuriteEntry,
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
