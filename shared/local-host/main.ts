import { readFileSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";

import type { LogHandler } from "@azure/functions";

import { type Config, loadConfig } from "../config";
import { ConfigError } from "../errors";
import { LocalSessionQueue } from "../queue/local-session-queue";
import { registeredFunctions, type Registration } from "../registry";
import { type RunningAzurite, startAzuriteTables } from "./azurite";
import { AZURITE_ENTRY, startAzuriteProcess } from "./azurite-process";
import { claimFolder, type FolderLock, LOCK_FILE } from "./folder-lock";
import { functionEntryFiles, loadFunctionModules } from "./function-loader";
import { type LocalHostOptions, type RunningLocalHost, startLocalHost } from "./local-host";
import {
  findProjectRoot,
  type HostSettings,
  mergeSettings,
  readHostJson,
  readLocalSettings,
} from "./settings";

/** Azurite's usual Table port: what `UseDevelopmentStorage=true` and the sample point at. */
export const AZURITE_TABLE_PORT = 10002;
export const DATA_FOLDER = ".data";

export interface DevelopmentHostOptions {
  readonly projectRoot?: string;
  /** The process environment; wins over local.settings.json, which wins over the defaults. */
  readonly env?: NodeJS.ProcessEnv;
  /** Write the resolved settings into `process.env`, where the functions read them. */
  readonly applyToProcessEnv?: boolean;
  /** 7071 unless PORT says otherwise; 0 takes a free port. */
  readonly port?: number;
  readonly azuritePort?: number;
  /**
   * Where Azurite runs. `child-process` (the default, `npm start`): a child process that saves
   * the tables and exits when this process stops or dies, even by SIGKILL. `this-process`: in
   * this process, saved on `close()` and every 5 s (tests that never kill the process).
   */
  readonly azurite?: "child-process" | "this-process";
  /** The child process's script (`azurite-process-entry.js` beside main.js by default). */
  readonly azuriteEntry?: string;
  /** Azurite's child process ended by itself: its tables are gone. Printed by default. */
  readonly onAzuriteExit?: (description: string) => void;
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
  readonly azurite: RunningAzurite | undefined;
  /** The settings the functions see. */
  readonly settings: Readonly<Record<string, string>>;
  close(): Promise<void>;
}

type TablesPlan =
  { kind: "embedded"; port: number; explicit: boolean } | { kind: "external"; description: string };

/** Start Azurite only when the settings point at the local development account (or nowhere). */
function planTables(values: Readonly<Record<string, string>>, port: number): TablesPlan {
  const uri = values.TableStorageConnection__tableServiceUri?.trim();
  if (uri) return { kind: "external", description: uri };
  const connection = values.TableStorageConnection?.trim();
  if (!connection) return { kind: "embedded", port, explicit: false };
  if (/^UseDevelopmentStorage=true;?$/i.test(connection)) {
    return { kind: "embedded", port: AZURITE_TABLE_PORT, explicit: true };
  }
  const endpoint =
    /TableEndpoint=http:\/\/(?:127\.0\.0\.1|localhost):(\d+)\/devstoreaccount1/i.exec(connection);
  if (endpoint) return { kind: "embedded", port: Number(endpoint[1]), explicit: true };
  return { kind: "external", description: "TableStorageConnection (connection string)" };
}

interface StartedTables {
  readonly azurite: RunningAzurite | undefined;
  /** Where the data lives; undefined when in memory or in someone else's Azurite. */
  readonly dataDir: string | undefined;
  /** The child process Azurite runs in, if it has one of its own. */
  readonly pid?: number;
}

const folderInUse = (dataDir: string, pid: number) =>
  `${dataDir} is in use by another npm start (process ${pid}, pid file ${join(dataDir, LOCK_FILE)}): this one keeps its tables in memory.`;
const portInUseExplicit = (port: number) =>
  `Port ${port} is in use: using the Azurite already listening there.`;
const portInUseFallback = (port: number) =>
  `Port ${port} is in use: starting Azurite on a free port instead.`;
const waitedForOrphan = (waited: { pid: number; ms: number }) =>
  `Waited ${(waited.ms / 1000).toFixed(1)} s for the Azurite of a stopped npm start (process ${waited.pid}) to save its tables.`;

/** How long a new start waits for the Azurite of a killed `npm start` to save and let go. */
const ORPHAN_WAIT_MS = 30_000;

/** Azurite in a child process: it claims the folder and falls back to a free port itself. */
async function startTablesProcess(
  plan: TablesPlan & { kind: "embedded" },
  dataDir: string,
  out: (line: string) => void,
  options: Pick<DevelopmentHostOptions, "azuriteEntry" | "onAzuriteExit">,
): Promise<StartedTables> {
  try {
    const azurite = await startAzuriteProcess({
      port: plan.port,
      fallbackToFreePort: !plan.explicit,
      dataDir,
      orphanWaitMs: ORPHAN_WAIT_MS,
      entry: options.azuriteEntry ?? AZURITE_ENTRY,
      onUnexpectedExit:
        options.onAzuriteExit ??
        ((how) =>
          out(`${how}: Table Storage is gone. Stop npm start (Ctrl+C) and start it again.`)),
    });
    if (azurite.waitedFor !== undefined) out(waitedForOrphan(azurite.waitedFor));
    if (azurite.dataDirHeldBy !== undefined) out(folderInUse(dataDir, azurite.dataDirHeldBy));
    if (azurite.portTaken !== undefined) out(portInUseFallback(azurite.portTaken));
    return { azurite, dataDir: azurite.dataDir, pid: azurite.pid };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || !plan.explicit) throw error;
    // The settings name that port: most likely the developer's own Azurite. Use it.
    out(portInUseExplicit(plan.port));
    return { azurite: undefined, dataDir: undefined };
  }
}

/** Azurite in this process (tests): a SIGKILL loses what it had not saved yet. */
async function startTablesHere(
  plan: TablesPlan & { kind: "embedded" },
  dataDir: string,
  out: (line: string) => void,
): Promise<StartedTables> {
  // One Azurite per data folder: two writing the same database file would corrupt it.
  const claim = await claimFolder(dataDir, { orphanWaitMs: ORPHAN_WAIT_MS });
  const lock = claim.lock;
  const folder = lock ? dataDir : undefined;
  if (claim.lock === undefined) out(folderInUse(dataDir, claim.holder.pid));
  else if (claim.waitedFor !== undefined) out(waitedForOrphan(claim.waitedFor));
  const start = (port: number) =>
    startAzuriteTables({ port, ...(folder !== undefined ? { dataDir: folder } : {}) });
  try {
    try {
      return { azurite: wrapClose(await start(plan.port), lock), dataDir: folder };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
      if (plan.explicit) {
        out(portInUseExplicit(plan.port));
        lock?.release();
        return { azurite: undefined, dataDir: undefined };
      }
      out(portInUseFallback(plan.port));
      return { azurite: wrapClose(await start(0), lock), dataDir: folder };
    }
  } catch (error) {
    lock?.release();
    throw error;
  }
}

function wrapClose(azurite: RunningAzurite, lock: FolderLock | undefined): RunningAzurite {
  return {
    ...azurite,
    close: async () => {
      try {
        await azurite.close();
      } finally {
        lock?.release();
      }
    },
  };
}

/**
 * `npm start`: Azurite's Table service in a child process (it saves its tables even when this
 * process is killed) with its data in `.data/azurite`, the settings
 * (defaults < local.settings.json < environment) validated by `loadConfig`, the functions
 * package.json `main` names, served on http://127.0.0.1:7071/api/… with the local queue drained.
 */
export async function startDevelopmentHost(
  options: DevelopmentHostOptions = {},
): Promise<RunningDevelopmentHost> {
  const out = options.out ?? ((line: string) => console.log(line));
  const env = options.env ?? process.env;
  const root = options.projectRoot ?? findProjectRoot();
  const data = join(root, DATA_FOLDER);
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
  const dataDir = join(data, "azurite");
  const startingTables =
    plan.kind !== "embedded"
      ? Promise.resolve(noTables)
      : (options.azurite ?? "child-process") === "child-process"
        ? startTablesProcess(plan, dataDir, out, options)
        : startTablesHere(plan, dataDir, out);
  let host: RunningLocalHost | undefined;
  try {
    // Loaded while Azurite's process starts: on two cores the two overlap.
    const registrations = (options.loadFunctions ?? loadFromPackageMain(root))();
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
    // Started, or still starting when the function modules failed to load.
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

/** Loads the built function modules, quieting the library's "no host here" warnings. */
function loadFromPackageMain(root: string): () => readonly Registration[] {
  return () => {
    const files = functionEntryFiles(root);
    const warn = console.warn;
    // Outside the Functions host, @azure/functions warns once per app.* call that it is in
    // "test mode" and skips registration; here that is expected (shared/registry.ts keeps
    // the registrations), so those lines would only mislead.
    console.warn = (...args: unknown[]) => {
      const first = typeof args[0] === "string" ? args[0] : "";
      if (
        /^WARNING: (Failed to detect the Azure Functions runtime|Skipping call to register)/.test(
          first,
        )
      ) {
        return;
      }
      warn(...args);
    };
    try {
      loadFunctionModules(files);
    } finally {
      console.warn = warn;
    }
    return registeredFunctions();
  };
}

function printBanner(
  out: (line: string) => void,
  info: {
    root: string;
    host: RunningLocalHost;
    config: Config;
    tables: StartedTables;
    plan: TablesPlan;
    localSettings: boolean;
    shadowed: readonly string[];
    hostJson: Pick<
      HostSettings,
      "maxConcurrentCalls" | "maxConcurrentSessions" | "maxConcurrentCallsPerSession"
    >;
  },
): void {
  const { host, config } = info;
  const rel = (path: string) => {
    const inside = relative(info.root, path);
    return inside === "" ? "." : inside.startsWith("..") || isAbsolute(inside) ? path : inside;
  };
  const width = Math.max(
    0,
    ...host.http.routes.map((r) => r.functionName.length),
    ...host.queues.map((q) => q.functionName.length),
  );
  out("");
  out("Herald local host (the same handlers the Functions host runs; no Core Tools needed)");
  out("");
  out("Functions:");
  for (const route of host.http.routes) {
    const methods = [...route.methods].join(",");
    const auth =
      route.authLevel === "anonymous"
        ? ""
        : `  (authLevel ${route.authLevel}: not enforced locally, as with Core Tools)`;
    out(`  ${route.functionName.padEnd(width)}  [${methods}] ${host.http.urlOf(route)}${auth}`);
  }
  for (const { functionName, queue } of host.queues) {
    const h = info.hostJson;
    const concurrency =
      queue instanceof LocalSessionQueue
        ? `sessions: up to ${h.maxConcurrentSessions} at once, ${h.maxConcurrentCallsPerSession} calls each`
        : `up to ${h.maxConcurrentCalls} at once`;
    out(
      `  ${functionName.padEnd(width)}  serviceBusTrigger: local queue "${queue.queueName}" in ${rel(queue.path)}` +
        ` (${concurrency}, dead-letter after ${queue.maxDeliveryCount} deliveries)`,
    );
  }
  for (const { functionName, reason } of host.skipped) {
    out(`  ${functionName.padEnd(width)}  serviceBusTrigger: NOT RUN (${reason})`);
  }
  out("");
  const { azurite, dataDir, pid } = info.tables;
  if (azurite) {
    const where = dataDir ? `data in ${rel(dataDir)}` : "data in memory only";
    out(`Table Storage: Azurite ${azurite.tableEndpoint}, ${where}`);
    if (pid !== undefined && dataDir) {
      out(
        `  (Azurite runs as process ${pid}: it saves the tables when npm start stops, or dies, and then exits)`,
      );
    }
  } else if (info.plan.kind === "embedded") {
    out("Table Storage: the Azurite already running on the configured port");
  } else {
    out(`Table Storage: ${info.plan.description}`);
  }
  if (config.serviceBus.kind !== "none") {
    out(
      "Service Bus: ServiceBusConnection is set, so the functions send to Service Bus; this local host does not receive from it (func start does). Unset it to use the local queue.",
    );
  }
  out(
    `Settings: built-in defaults${info.localSettings ? " < local.settings.json" : ""} < environment` +
      (info.shadowed.length > 0
        ? ` (environment overrides local.settings.json for ${info.shadowed.join(", ")})`
        : ""),
  );
  out(
    config.graph.proactiveInstall
      ? `Proactive install: on (Graph ${config.graph.endpoint}, app ${config.graph.teamsAppId ?? ""}): users Herald has never seen get the app installed, then the notification`
      : 'Proactive install: off (users Herald has never seen are unreachable; see README, "Reach people who never opened the bot")',
  );
  if (config.bot.kind === "anonymous") {
    const bar = "!".repeat(78);
    out("");
    out(bar);
    out("!! WARNING: MicrosoftAppId is not set. The bot endpoint accepts ANONYMOUS requests");
    out("!! (no Bot Framework token is checked) and replies without authenticating.");
    out("!! This is for local development with the Agents Playground only; a deployment");
    out("!! refuses to start without MicrosoftAppId.");
    out(bar);
  } else {
    out(`Bot: ${config.bot.appType} app ${config.bot.appId} (Bot Framework tokens required)`);
  }
  out("");
  out("Chat with the bot: npm run playground (in another terminal). Stop: Ctrl+C.");
  out("");
}

/** The `npm start` process: start, then stop cleanly on Ctrl+C / SIGTERM. */
async function main(): Promise<void> {
  let running: RunningDevelopmentHost;
  let tablesGone: string | undefined;
  let onTablesGone = (how: string) => void (tablesGone = how);
  try {
    running = await startDevelopmentHost({ onAzuriteExit: (how) => onTablesGone(how) });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(
        `\nnpm start: ${error.message}\n\nFix the setting in local.settings.json or the environment.`,
      );
    } else if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      console.error(
        `\nnpm start: ${(error as Error).message}. Is another npm start or func start running? Set PORT to use another port.`,
      );
    } else {
      console.error(`\nnpm start failed: ${(error as Error).stack ?? String(error)}`);
    }
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals | "Table Storage gone") => {
    if (stopping) {
      console.error(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
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
  watchLauncher(() => stop("SIGTERM"));
  // Nothing works without the tables: stop rather than answer every request with a 500.
  onTablesGone = (how) => {
    tablesGone = how;
    console.error(`\n${how}: Table Storage is gone.`);
    if (!stopping) stop("Table Storage gone");
  };
  if (tablesGone !== undefined) onTablesGone(tablesGone);
}

/**
 * `npm start` runs this under `sh -c`, which does not pass on a SIGTERM sent to npm alone
 * (a process manager, `kill <npm pid>`): without this watch the host would outlive npm and
 * keep port 7071 and the data folder. Linux names the grandparent in /proc; elsewhere only
 * the parent is watched.
 */
function watchLauncher(onGone: () => void): void {
  if (process.env.npm_lifecycle_event === undefined) return;
  const parent = process.ppid;
  let launcher: number | undefined;
  try {
    const stat = readFileSync(`/proc/${parent}/stat`, "utf8");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (Number.isInteger(ppid) && ppid > 1) launcher = ppid;
  } catch {
    launcher = undefined;
  }
  const timer = setInterval(() => {
    if (process.ppid !== parent || (launcher !== undefined && !isAlive(launcher))) {
      clearInterval(timer);
      onGone();
    }
  }, 1000);
  timer.unref();
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

// Also checks the file name: a bundle that includes this module (esbuild) is itself require.main.
if (require.main === module && /[\\/]local-host[\\/]main\.js$/.test(__filename)) void main();
