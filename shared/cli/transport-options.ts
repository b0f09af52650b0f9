import { isAbsolute, join } from "node:path";

import { type Command, Option } from "commander";

import type {
  NotificationClientOptions,
  NotificationClientTarget,
} from "../client/notification-client";
import { UsageError } from "./cli-io";

/** Where `npm start` keeps its queue (`LocalQueueDirectory` in local.settings.sample.json). */
export const DEFAULT_QUEUE_DIR = ".data/queue";
/** The local host's address (`npm start`), as `func start` uses. */
export const DEFAULT_ENDPOINT = "http://127.0.0.1:7071";

/**
 * `npm start`'s address as this shell would have it: `PORT` moves npm start (and the
 * playground's target), so it moves the CLI's default too.
 */
export function localEndpoint(env: NodeJS.ProcessEnv): string {
  const port = Number(present(env.PORT));
  return Number.isInteger(port) && port > 0 && port < 65_536
    ? `http://127.0.0.1:${port}`
    : DEFAULT_ENDPOINT;
}

export const ENV = {
  namespace: "HERALD_SERVICEBUS_NAMESPACE",
  connectionString: "SERVICEBUS_CONNECTION_STRING",
  endpoint: "HERALD_ENDPOINT",
  functionKey: "HERALD_FUNCTION_KEY",
  queueDir: "LocalQueueDirectory",
  queueName: "NotificationsQueueName",
} as const;

export interface TransportFlags {
  readonly namespace?: string;
  readonly connectionString?: string;
  readonly endpoint?: string;
  readonly functionKey?: string;
  readonly queueDir?: string;
  readonly queue?: string;
  /** `notify --wait` over a queue: where Herald's status is read. */
  readonly statusEndpoint?: string;
}

const SEND_GROUP = "Where to send (default: the local queue that npm start drains):";

export function addSendTransportOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        "--namespace <fqdn>",
        `send to this Service Bus namespace (e.g. contoso-herald.servicebus.windows.net), signed in with DefaultAzureCredential (az login, managed identity, …); needs the "Azure Service Bus Data Sender" role [env ${ENV.namespace}]`,
      ).helpGroup(SEND_GROUP),
    )
    .addOption(
      new Option(
        "--connection-string <string>",
        `send to Service Bus with a connection string [env ${ENV.connectionString}]`,
      ).helpGroup(SEND_GROUP),
    )
    .addOption(
      new Option(
        "--endpoint <url>",
        `send through Herald's HTTP API (POST /api/notifications) at this function app URL [env ${ENV.endpoint}]`,
      ).helpGroup(SEND_GROUP),
    )
    .addOption(
      new Option(
        "--function-key <key>",
        `the function key for --endpoint; prefer the env var, a key on the command line shows in the process list [env ${ENV.functionKey}]`,
      ).helpGroup(SEND_GROUP),
    )
    .addOption(
      new Option(
        "--queue-dir <path>",
        `the folder of the local broker npm start drains [env ${ENV.queueDir}] (default: "${DEFAULT_QUEUE_DIR}")`,
      ).helpGroup(SEND_GROUP),
    )
    .addOption(
      new Option(
        "--queue <name>",
        `the queue name [env ${ENV.queueName}] (default: "notifications")`,
      ).helpGroup(SEND_GROUP),
    )
    .addOption(
      new Option(
        "--status-endpoint <url>",
        `with --wait over a queue: Herald's function app URL to read the status from [env ${ENV.endpoint}] (default for the local queue: "${DEFAULT_ENDPOINT}", npm start, or its PORT); --function-key or ${ENV.functionKey} is its key`,
      ).helpGroup(SEND_GROUP),
    );
}

export function addStatusTransportOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        "--endpoint <url>",
        `Herald's function app URL [env ${ENV.endpoint}] (default: "${DEFAULT_ENDPOINT}", npm start, or its PORT)`,
      ).helpGroup("Where to ask:"),
    )
    .addOption(
      new Option(
        "--function-key <key>",
        `the function key; prefer the env var [env ${ENV.functionKey}]`,
      ).helpGroup("Where to ask:"),
    );
}

function present(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/**
 * Picks where `notify` sends: one flag, else one environment variable, else the local queue
 * folder. Two flags (or two variables) that disagree are a usage error, never a silent choice.
 */
export function resolveSendTarget(
  flags: TransportFlags,
  env: NodeJS.ProcessEnv,
  cwd: string,
): { target: NotificationClientTarget; options: NotificationClientOptions } {
  const queueName = present(flags.queue) ?? present(env[ENV.queueName]);
  const options: NotificationClientOptions = queueName !== undefined ? { queueName } : {};
  const functionKey = present(flags.functionKey) ?? present(env[ENV.functionKey]);
  const fromFlags = {
    namespace: present(flags.namespace),
    connectionString: present(flags.connectionString),
    endpoint: present(flags.endpoint),
    queueDir: present(flags.queueDir),
  };
  const given = Object.entries(fromFlags).filter(([, v]) => v !== undefined);
  if (given.length > 1) {
    throw new UsageError(
      `choose one place to send to: ${given.map(([k]) => `--${kebab(k)}`).join(", ")} were all given`,
    );
  }
  let choice = given[0] as [keyof typeof fromFlags, string] | undefined;
  if (choice === undefined) {
    const fromEnv = (["namespace", "connectionString", "endpoint"] as const)
      .map((k) => [k, present(env[ENV[k]])] as const)
      .filter(([, v]) => v !== undefined);
    if (fromEnv.length > 1) {
      throw new UsageError(
        `${fromEnv.map(([k]) => ENV[k]).join(" and ")} are both set: pass --namespace, --connection-string, --endpoint or --queue-dir to choose`,
      );
    }
    choice = fromEnv[0] as [keyof typeof fromFlags, string] | undefined;
  }
  if (
    present(flags.functionKey) !== undefined &&
    choice?.[0] !== "endpoint" &&
    present(flags.statusEndpoint) === undefined
  ) {
    throw new UsageError(
      "--function-key only applies when sending through --endpoint (or reading the status from --status-endpoint)",
    );
  }
  switch (choice?.[0]) {
    case "namespace":
      return { target: { fullyQualifiedNamespace: choice[1] }, options };
    case "connectionString":
      return { target: { connectionString: choice[1] }, options };
    case "endpoint":
      return {
        target: { endpoint: choice[1], ...(functionKey !== undefined ? { functionKey } : {}) },
        options,
      };
    default: {
      const dir = choice?.[1] ?? present(env[ENV.queueDir]) ?? DEFAULT_QUEUE_DIR;
      return {
        target: { localQueueDirectory: isAbsolute(dir) ? dir : join(cwd, dir) },
        options,
      };
    }
  }
}

export function resolveStatusEndpoint(
  flags: TransportFlags,
  env: NodeJS.ProcessEnv,
): { endpoint: string; functionKey?: string } {
  const endpoint = present(flags.endpoint) ?? present(env[ENV.endpoint]) ?? localEndpoint(env);
  const functionKey = present(flags.functionKey) ?? present(env[ENV.functionKey]);
  return { endpoint, ...(functionKey !== undefined ? { functionKey } : {}) };
}

/**
 * Where `notify --wait` reads the status: the endpoint it sent to; over a queue, the given
 * status endpoint, else HERALD_ENDPOINT, else (the local queue) npm start's address. Service
 * Bus has no default: the function app's URL cannot be guessed from the namespace.
 */
export function resolveWaitStatusEndpoint(
  target: NotificationClientTarget,
  flags: TransportFlags,
  env: NodeJS.ProcessEnv,
): { endpoint: string; functionKey?: string } {
  if ("endpoint" in target) {
    const { endpoint, functionKey } = target;
    return { endpoint, ...(functionKey !== undefined ? { functionKey } : {}) };
  }
  if (present(flags.statusEndpoint) === undefined && present(env[ENV.endpoint]) === undefined) {
    if (!("localQueueDirectory" in target)) {
      throw new UsageError(
        `--wait over Service Bus needs Herald's HTTP endpoint to read the status: pass --status-endpoint <url> or set ${ENV.endpoint}`,
      );
    }
  }
  const endpoint =
    present(flags.statusEndpoint) ?? present(env[ENV.endpoint]) ?? localEndpoint(env);
  const functionKey = present(flags.functionKey) ?? present(env[ENV.functionKey]);
  return { endpoint, ...(functionKey !== undefined ? { functionKey } : {}) };
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
