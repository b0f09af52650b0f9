import { join, resolve } from "node:path";

import type { LogHandler } from "@azure/functions";

import { type Config, loadConfig } from "../config";
import { ConfigError, LocalTablesError } from "../errors";
import { isOutsideHostNotice, registeredFunctions, type Registration } from "../registry";
import { type AttachedAzurite, DEFAULT_IDLE_MS } from "./azurite-client";
import { printBanner } from "./banner";
import { functionEntryFiles, loadFunctionModules } from "./function-loader";
import { type LocalHostOptions, type RunningLocalHost, startLocalHost } from "./local-host";
import {
  AZURITE_FOLDER,
  DATA_FOLDER,
  findProjectRoot,
  mergeSettings,
  readHostJson,
  readLocalSettings,
} from "./settings";
import { AZURITE_TABLE_PORT, planTables, type StartedTables, startTables } from "./tables";

export { AZURITE_TABLE_PORT } from "./tables";

export interface DevelopmentHostOptions {
  readonly projectRoot?: string;
  /** The process environment; wins over local.settings.json, which wins over the defaults. */
  readonly env?: NodeJS.ProcessEnv;
  /** Write the resolved settings into `process.env`, where the functions read them. */
  readonly applyToProcessEnv?: boolean;
  /** 7071 unless PORT says otherwise; 0 takes a free port. */
  readonly port?: number;
  /** Where a new Azurite listens (10002 by default; 0 takes a free port). */
  readonly azuritePort?: number;
  /** The Azurite process's script (`azurite-daemon.js` beside this module by default). */
  readonly azuriteDaemon?: string;
  /** A new Azurite stops by itself this long after the last host left (10 min; 0: never). */
  readonly azuriteIdleMs?: number;
  /** The attached Azurite went away while this host runs. Printed by default. */
  readonly onAzuriteLost?: (description: string) => void;
  /** Registrations to serve; by default the modules package.json `main` names are loaded. */
  readonly loadFunctions?: () => readonly Registration[];
  /** Local queue tuning (lock duration, poll interval…); the reliability suite shortens locks. */
  readonly queueOptions?: LocalHostOptions["queueOptions"];
  readonly out?: (line: string) => void;
  /** Where the functions' `context.log` lines and the access log go; the console by default. */
  readonly logHandlerFor?: (functionName: string) => LogHandler;
}

export interface RunningDevelopmentHost {
  readonly config: Config;
  readonly host: RunningLocalHost;
  /** The data folder's Azurite this host is attached to (undefined: tables elsewhere). */
  readonly azurite: AttachedAzurite | undefined;
  /** The settings the functions see. */
  readonly settings: Readonly<Record<string, string>>;
  /** Stops the host and detaches from Azurite, which keeps running. */
  close(): Promise<void>;
}

/**
 * `npm start`: the data folder's Azurite (`.data/azurite`, attached, or started if none serves it),
 * the settings
 * (defaults < local.settings.json < environment) validated by `loadConfig`, the functions
 * package.json `main` names, served on http://127.0.0.1:7071/api/… with the local queue drained.
 */
export async function startDevelopmentHost(
  options: DevelopmentHostOptions = {},
): Promise<RunningDevelopmentHost> {
  const out = options.out ?? ((line: string) => console.log(line));
  const env = options.env ?? process.env;
  const root = options.projectRoot ?? findProjectRoot();
  const local = readLocalSettings(root);
  const merged = mergeSettings(
    // The queue names have defaults in loadConfig, but bindings name them as
    // %NotificationsQueueName% and %WorkQueueName%, which must resolve to app settings.
    {
      LocalQueueDirectory: join(DATA_FOLDER, "queue"),
      NotificationsQueueName: "notifications",
      WorkQueueName: "herald-work",
    },
    local,
    env,
  );
  const values = { ...merged.values };
  // The functions and the CLI resolve a relative folder against their working directory.
  if (values.LocalQueueDirectory?.trim()) {
    values.LocalQueueDirectory = resolve(root, values.LocalQueueDirectory);
  }

  const plan = planTables(values, options.azuritePort ?? AZURITE_TABLE_PORT);
  // A bad setting stops start-up before anything starts. Azurite's connection string is only
  // known once it listens, so the first check stands in a placeholder for it.
  loadConfig(
    plan.kind === "embedded"
      ? { ...values, TableStorageConnection: "UseDevelopmentStorage=true" }
      : values,
  );
  const port = options.port ?? portFrom(env);
  const hostJson = readHostJson(root);

  const noTables: StartedTables = { azurite: undefined, dataDir: undefined };
  const dataDir = join(root, AZURITE_FOLDER);
  const startingTables =
    plan.kind !== "embedded" ? Promise.resolve(noTables) : startTables(plan, dataDir, out, options);
  let host: RunningLocalHost | undefined;
  try {
    // Loaded while Azurite's process starts: on two cores the two overlap.
    const registrations = quietRegistration(
      options.loadFunctions ?? (() => loadFromPackageMain(root)),
    );
    const tables = await startingTables;
    const azurite = tables.azurite;
    if (azurite) values.TableStorageConnection = azurite.connectionString;
    const config = loadConfig(values);
    if (options.applyToProcessEnv ?? true) {
      for (const [key, value] of Object.entries(values)) process.env[key] = value;
    }
    const queueDirectory =
      config.serviceBus.kind === "none" ? config.localQueueDirectory : undefined;
    host = await startLocalHost({
      registrations,
      settings: values,
      port,
      hostJson,
      queueDirectory,
      // In Azure the queue's max delivery count is MaxDeliveryAttempts (infra sets both from
      // one parameter); the processor relies on that to know a delivery is the last one.
      queueOptions: { maxDeliveryCount: config.maxDeliveryAttempts, ...options.queueOptions },
      ...(options.logHandlerFor !== undefined ? { logHandlerFor: options.logHandlerFor } : {}),
    });
    const running = host;

    printBanner(out, {
      root,
      host: running,
      config,
      tables,
      plan,
      localSettings: local !== undefined,
      shadowed: merged.shadowed,
      hostJson,
    });

    let closing: Promise<void> | undefined;
    return {
      config,
      host: running,
      azurite,
      settings: values,
      close: () =>
        (closing ??= (async () => {
          await running.close();
          await azurite?.close();
        })()),
    };
  } catch (error) {
    await host?.close();
    // Attached, or still attaching when the function modules failed to load: detach (Azurite
    // keeps running, as when the host stops).
    await (await startingTables.catch(() => noTables)).azurite?.close();
    throw error;
  }
}

function portFrom(env: NodeJS.ProcessEnv): number {
  const raw = env.PORT?.trim();
  if (!raw) return 7071;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`PORT: "${raw}" is not a port number`);
  }
  return port;
}

/** The built function modules package.json `main` names (`dist/functions/*.js`), as func start. */
function loadFromPackageMain(root: string): readonly Registration[] {
  loadFunctionModules(functionEntryFiles(root));
  return registeredFunctions();
}

/** Loads the function modules without @azure/functions' outside-the-host notices. */
function quietRegistration(load: () => readonly Registration[]): readonly Registration[] {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!isOutsideHostNotice(args[0])) warn(...args);
  };
  try {
    return load();
  } finally {
    console.warn = warn;
  }
}

/** `HERALD_AZURITE_IDLE_MINUTES`: how long a new Azurite waits after the last npm start left. */
function idleFrom(env: NodeJS.ProcessEnv): number {
  const raw = env.HERALD_AZURITE_IDLE_MINUTES?.trim();
  if (!raw) return DEFAULT_IDLE_MS;
  const minutes = Number(raw);
  if (!Number.isFinite(minutes) || minutes < 0) {
    throw new ConfigError(
      `HERALD_AZURITE_IDLE_MINUTES: "${raw}" is not a number of minutes (0: until npm run azurite:stop)`,
    );
  }
  return Math.round(minutes * 60_000);
}

/**
 * Ctrl+C reaches `npm start` twice: the terminal signals the whole foreground group (npm and
 * this process), and npm passes the signals it gets on to its script
 * (@npmcli/run-script's signal-manager.js). A repeat this soon is that same Ctrl+C.
 */
const SAME_SIGNAL_MS = 1_000;

/**
 * The `npm start` process (`build/local/start.js`, or `node dist/shared/local-host/main.js`):
 * start, then stop cleanly on Ctrl+C, SIGINT or SIGTERM (to this process or to npm), exit 0.
 */
export async function runNpmStart(
  options: Omit<DevelopmentHostOptions, "onAzuriteLost"> & {
    /** Called once the host serves (the crash test's harness prints where). */
    readonly onReady?: (running: RunningDevelopmentHost) => void;
  } = {},
): Promise<void> {
  let running: RunningDevelopmentHost;
  let tablesGone: string | undefined;
  let onTablesGone = (how: string) => void (tablesGone = how);
  const { onReady, ...hostOptions } = options;
  try {
    running = await startDevelopmentHost({
      ...hostOptions,
      azuriteIdleMs: hostOptions.azuriteIdleMs ?? idleFrom(process.env),
      onAzuriteLost: (how) => onTablesGone(how),
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(
        `\nnpm start: ${error.message}\n\nFix the setting in local.settings.json or the environment.`,
      );
    } else if (error instanceof LocalTablesError) {
      console.error(`\nnpm start: Table Storage: ${error.message}`);
    } else if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      console.error(
        `\nnpm start: ${(error as Error).message}. Is another npm start or func start running? Set PORT to use another port.`,
      );
    } else {
      console.error(`\nnpm start failed: ${(error as Error).stack ?? String(error)}`);
    }
    process.exit(1);
  }
  let stopAsked: number | undefined;
  const stop = (signal: NodeJS.Signals | "Table Storage gone" | "npm gone") => {
    if (stopAsked !== undefined) {
      if (performance.now() - stopAsked < SAME_SIGNAL_MS) return;
      console.error(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopAsked = performance.now();
    console.log(`\n${signal}: stopping (finishing the messages in flight)…`);
    running.close().then(
      () => {
        console.log("Stopped.");
        process.exit(tablesGone === undefined ? 0 : 1);
      },
      (error: unknown) => {
        console.error(`Stopping failed: ${(error as Error).stack ?? String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  watchLauncher(() => stop("npm gone"));
  onReady?.(running);
  // Nothing works without the tables: stop rather than answer every request with a 500.
  onTablesGone = (how) => {
    tablesGone = how;
    console.error(`\n${how}: Table Storage is gone.`);
    if (stopAsked === undefined) stop("Table Storage gone");
  };
  if (tablesGone !== undefined) onTablesGone(tablesGone);
}

/**
 * npm waits for its script and passes SIGINT / SIGTERM on to it (package.json `exec`s node, so
 * this process is npm's child). If npm itself is killed (SIGKILL), this process is re-parented:
 * stop then, rather than keep port 7071 with nobody to stop it.
 */
function watchLauncher(onGone: () => void): void {
  if (process.env.npm_lifecycle_event === undefined) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      onGone();
    }
  }, 1000);
  timer.unref();
}

// Also checks the file name: a bundle that includes this module (esbuild) is itself require.main.
if (require.main === module && /[\\/]local-host[\\/]main\.js$/.test(__filename)) void runNpmStart();
