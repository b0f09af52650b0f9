import { mkdirSync } from "node:fs";
import { join } from "node:path";

/** The well-known development account every Azurite instance accepts; not a secret. */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface RunningAzurite {
  readonly tableEndpoint: string;
  readonly connectionString: string;
  close(): Promise<void>;
}

interface AzuriteTableServer {
  start(): Promise<void>;
  close(): Promise<void>;
  getHttpServerAddress(): string;
}

type TableServerCtor = new (config: unknown) => AzuriteTableServer;
type TableConfigurationCtor = new (...args: unknown[]) => unknown;

/**
 * Starts Azurite's Table service in this process. `require("azurite")` cannot be used (its
 * main file needs vscode), so the Table server is loaded from its own module. Port 0 takes a
 * free port; pass a folder to keep data across restarts, or none for memory only.
 */
export async function startAzuriteTables(
  options: {
    port?: number;
    dataDir?: string;
    /**
     * How often Azurite saves its tables to `dataDir` when they changed (LokiJS autosave;
     * Azurite's own interval is 5 s). Closing always saves.
     */
    autosaveIntervalMs?: number;
  } = {},
): Promise<RunningAzurite> {
  /* eslint-disable @typescript-eslint/no-require-imports -- azurite ships no typings for these deep modules */
  const TableServer = (
    require("azurite/dist/src/table/TableServer") as { default: TableServerCtor }
  ).default;
  const TableConfiguration = (
    require("azurite/dist/src/table/TableConfiguration") as { default: TableConfigurationCtor }
  ).default;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const inMemory = options.dataDir === undefined;
  if (options.dataDir !== undefined) mkdirSync(options.dataDir, { recursive: true });
  const config = new TableConfiguration(
    "127.0.0.1",
    options.port ?? 0,
    undefined,
    inMemory ? "__azurite_memory__" : join(options.dataDir!, "__azurite_db_table__.json"),
    false, // debug log
    false, // access log
    undefined,
    undefined,
    false, // loose
    true, // skip API version check: newer SDKs send versions Azurite does not list yet
    "",
    "",
    "",
    undefined,
    false,
    inMemory,
  );
  const server = new TableServer(config);
  await server.start();
  if (!inMemory && options.autosaveIntervalMs !== undefined) {
    setAutosaveInterval(server, options.autosaveIntervalMs);
  }
  const address = server.getHttpServerAddress(); // "http://127.0.0.1:PORT"
  const tableEndpoint = `${address}/${AZURITE_ACCOUNT}`;
  return {
    tableEndpoint,
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
      `TableEndpoint=${tableEndpoint};`,
    close: () => server.close(),
  };
}

interface LokiAutosave {
  autosaveInterval: number;
  autosaveEnable(): void;
  autosaveDisable(): void;
}

/**
 * Azurite fixes LokiJS's autosave at 5 s and offers no setting, so the interval is changed on
 * its database (`metadataStore.db`, a LokiJS `Loki`): stop the timer, set, start it again.
 * Left as it is if a later Azurite keeps the database elsewhere.
 */
function setAutosaveInterval(server: unknown, ms: number): void {
  const db = (server as { metadataStore?: { db?: Partial<LokiAutosave> } }).metadataStore?.db;
  if (
    db === undefined ||
    typeof db.autosaveEnable !== "function" ||
    typeof db.autosaveDisable !== "function"
  ) {
    return;
  }
  db.autosaveDisable();
  db.autosaveInterval = ms;
  db.autosaveEnable();
}
