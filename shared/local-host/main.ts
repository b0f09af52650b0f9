import { isAbsolute, join, relative, resolve } from "node:path";

import type { LogHandler } from "@azure/functions";

import { type Config, loadConfig } from "../config";
import { ConfigError, LocalTablesError } from "../errors";
import { registeredFunctions, type Registration } from "../registry";
import {
  attachAzurite,
  type AttachedAzurite,
  AZURITE_DAEMON,
  DEFAULT_IDLE_MS,
} from "./azurite-client";
import { describeDuration } from "./azurite-protocol";
import { functionEntryFiles, loadFunctionModules } from "./function-loader";
import { type LocalHostOptions, type RunningLocalHost, startLocalHost } from "./local-host";
import {
  AZURITE_FOLDER,
  DATA_FOLDER,
  findProjectRoot,
  type HostSettings,
  mergeSettings,
  readHostJson,
  readLocalSettings,
} from "./settings";

/** Azurite's usual Table port: what `UseDevelopmentStorage=true` and the sample point at. */
export const AZURITE_TABLE_PORT = 10002;

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
  readonly azurite: AttachedAzurite | undefined;
  /** Where the data lives; undefined when in someone else's Azurite. */
  readonly dataDir: string | undefined;
}

const portInUseExplicit = (port: number) =>
  `Port ${port} is in use: using the Azurite already listening there.`;

/**
 * The data folder's own Azurite, as Table Storage is to a Function App: a process of its own that
 * this host attaches to (started if none serves the folder), and that no crash of this host can
 * stop or roll back. Never tables in memory: if it cannot be reached or started, start-up fails.
 */
async function startTables(
  plan: TablesPlan & { kind: "embedded" },
  dataDir: string,
  out: (line: string) => void,
  options: Pick<DevelopmentHostOptions, "azuriteDaemon" | "azuriteIdleMs" | "onAzuriteLost">,
): Promise<StartedTables> {
  try {
    const azurite = await attachAzurite({
      dataDir,
      port: plan.port,
      fallbackToFreePort: !plan.explicit,
      idleMs: options.azuriteIdleMs ?? DEFAULT_IDLE_MS,
      daemonScript: options.azuriteDaemon ?? AZURITE_DAEMON,
      onLost:
        options.onAzuriteLost ??
        ((how) =>
          out(`${how}: Table Storage is gone. Stop npm start (Ctrl+C) and start it again.`)),
    });
    return { azurite, dataDir };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || !plan.explicit) throw error;
    // The settings name that port: most likely the developer's own Azurite. Use it.
    out(portInUseExplicit(plan.port));
    return { azurite: undefined, dataDir: undefined };
  }
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

/**
 * Outside the Functions host, @azure/functions warns once per app.* call that it is in "test
 * mode" and skips registration; here that is expected (shared/registry.ts keeps the
 * registrations), so those lines would only mislead.
 */
function quietRegistration(load: () => readonly Registration[]): readonly Registration[] {
  const warn = console.warn;
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
    return load();
  } finally {
    console.warn = warn;
  }
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
    const concurrency = queue.sessions
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
  const { azurite, dataDir } = info.tables;
  if (azurite && dataDir) {
    out(`Table Storage: Azurite ${azurite.tableEndpoint}, tables in ${rel(dataDir)}`);
    for (const line of azuriteLines(azurite, info.plan, rel)) out(`  ${line}`);
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

/** What the banner says of the data folder's Azurite: which process, reused or started, how it ends. */
function azuriteLines(
  azurite: AttachedAzurite,
  plan: TablesPlan,
  rel: (path: string) => string,
): string[] {
  const { status } = azurite;
  // The status was taken as this host attached: it is one of the hosts.
  const others = status.hosts.filter((pid) => pid !== process.pid).length;
  const lines = [
    azurite.how === "started"
      ? `Azurite process ${azurite.pid}: started by this npm start (log ${rel(azurite.logFile)})`
      : `Azurite process ${azurite.pid}: reused, running since ${status.startedAt}` +
        (others > 0 ? `, ${others} other npm start${others === 1 ? "" : "s"} attached` : "") +
        ` (log ${rel(azurite.logFile)})`,
  ];
  if (status.portTaken !== undefined) {
    lines.push(`(port ${status.portTaken} was in use when it started: it took a free one)`);
  }
  const port = Number(new URL(azurite.tableEndpoint).port);
  if (plan.kind === "embedded" && plan.explicit && port !== plan.port) {
    lines.push(
      `(the settings name port ${plan.port}: npm run azurite:stop, then npm start, to move it there)`,
    );
  }
  lines.push(
    "It keeps running when npm start stops or crashes, as Table Storage outlives a Function App; " +
      (status.idleMs > 0
        ? `it stops by itself ${describeDuration(status.idleMs)} after the last npm start left, `
        : "") +
      "or now with: npm run azurite:stop",
  );
  return lines;
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
