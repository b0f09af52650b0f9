import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { toError } from "../errors";

/** The well-known development account every Azurite instance accepts; not a secret. */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface RunningAzurite {
  readonly tableEndpoint: string;
  readonly connectionString: string;
  close(): Promise<void>;
}

/** Azurite with its tables in a folder: what the folder's Azurite process needs of LokiJS. */
export interface PersistentAzurite extends RunningAzurite {
  readonly persistence: TablesPersistence | undefined;
}

/**
 * Azurite keeps its tables in memory (a LokiJS database) and writes the whole database to one
 * file: every `autosaveIntervalMs` when something changed, and on close. LokiJS's `close()`
 * saves only when something changed since the last save *started*, and returns at once when a
 * save is still writing: a process that exits right after it loses that save (the file keeps the
 * one before). `flush()` closes that gap. Undefined when a later Azurite keeps its database
 * elsewhere.
 */
export interface TablesPersistence {
  /** The database file. */
  readonly file: string;
  /** Resolves once everything changed so far is in the file (waits for a save in flight, then saves). */
  flush(): Promise<void>;
  /** What the file holds, compared with memory. */
  state(): {
    readonly saves: number;
    readonly lastSaveAt: string | undefined;
    readonly unsavedChanges: boolean;
    readonly saveInFlight: boolean;
  };
  /**
   * Called before every save; when it returns false the save is skipped and `onRefused` runs
   * (the folder's Azurite checks that the folder is still its own before it writes there).
   */
  guardSaves(mayWrite: () => boolean, onRefused: () => void): void;
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
): Promise<PersistentAzurite> {
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
  const database = inMemory ? undefined : lokiDatabaseOf(server);
  if (database !== undefined && options.autosaveIntervalMs !== undefined) {
    setAutosaveInterval(database, options.autosaveIntervalMs);
  }
  const address = server.getHttpServerAddress(); // "http://127.0.0.1:PORT"
  const tableEndpoint = `${address}/${AZURITE_ACCOUNT}`;
  return {
    tableEndpoint,
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
      `TableEndpoint=${tableEndpoint};`,
    persistence:
      database === undefined
        ? undefined
        : persistenceOf(database, join(options.dataDir!, "__azurite_db_table__.json")),
    close: () => server.close(),
  };
}

/** The parts of a LokiJS 1.5 `Loki` database this module uses (lokijs/src/lokijs.js). */
interface LokiDatabase {
  autosaveInterval: number;
  autosaveEnable(): void;
  autosaveDisable(): void;
  autosaveDirty(): boolean;
  /** Throttled: while a save runs, callers wait for the next one, which starts right after. */
  saveDatabase(callback?: (error?: unknown) => void): void;
  saveDatabaseInternal(callback?: (error?: unknown) => void): void;
  throttledSavePending?: boolean;
}

/** Azurite's database (`metadataStore.db`), if this Azurite keeps it where 3.x does. */
function lokiDatabaseOf(server: unknown): LokiDatabase | undefined {
  const db = (server as { metadataStore?: { db?: Partial<LokiDatabase> } }).metadataStore?.db;
  if (
    db === undefined ||
    typeof db.autosaveEnable !== "function" ||
    typeof db.autosaveDisable !== "function" ||
    typeof db.autosaveDirty !== "function" ||
    typeof db.saveDatabase !== "function" ||
    typeof db.saveDatabaseInternal !== "function"
  ) {
    return undefined;
  }
  return db as LokiDatabase;
}

/**
 * Azurite fixes LokiJS's autosave at 5 s and offers no setting, so the interval is changed on
 * its database: stop the timer, set, start it again.
 */
function setAutosaveInterval(db: LokiDatabase, ms: number): void {
  db.autosaveDisable();
  db.autosaveInterval = ms;
  db.autosaveEnable();
}

function persistenceOf(db: LokiDatabase, file: string): TablesPersistence {
  let saves = 0;
  let lastSaveAt: string | undefined;
  let guard: { mayWrite: () => boolean; onRefused: () => void } | undefined;
  // Every save (autosave, close, flush) goes through saveDatabaseInternal.
  const save = db.saveDatabaseInternal.bind(db);
  db.saveDatabaseInternal = (callback) => {
    if (guard !== undefined && !guard.mayWrite()) {
      guard.onRefused();
      callback?.(new Error("the data folder is no longer this Azurite's: not saved"));
      return;
    }
    save((error) => {
      if (error === undefined || error === null) {
        saves += 1;
        lastSaveAt = new Date().toISOString();
      }
      callback?.(error);
    });
  };
  return {
    file,
    flush: () =>
      new Promise<void>((resolve, reject) => {
        db.saveDatabase((error) =>
          error === undefined || error === null ? resolve() : reject(toError(error)),
        );
      }),
    state: () => ({
      saves,
      lastSaveAt,
      unsavedChanges: db.autosaveDirty(),
      saveInFlight: db.throttledSavePending === true,
    }),
    guardSaves: (mayWrite, onRefused) => {
      guard = { mayWrite, onRefused };
    },
  };
}
