import { z } from "zod";

import type { BotIdentity } from "./bot-identity";
import { ConfigError } from "./errors";
import { checkWebhookUrl, parseWebhookSecret } from "./events/standard-webhooks";
import { checkGraphEndpoint, DEFAULT_GRAPH_ENDPOINT } from "./graph/graph-endpoint-policy";
import type { TableConnection } from "./store/table-factory";

const optionalText = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .optional();

const guid = z
  .string()
  .trim()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, "must be a GUID");

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const trueOrFalse = (fallback: "true" | "false") =>
  z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(["true", "false"], { error: 'must be "true" or "false"' }))
    .default(fallback);

/**
 * Every app setting Herald's code reads, with its meaning. The names follow the Functions
 * convention `<Connection>__<property>` for identity-based connections. `infra/` and
 * `local.settings.sample.json` must list exactly these (a test checks the drift).
 */
export const settingsSchema = z.object({
  MicrosoftAppId: optionalText.pipe(guid.optional()),
  MicrosoftAppType: z.enum(["UserAssignedMSI", "SingleTenant"]).default("UserAssignedMSI"),
  MicrosoftAppTenantId: optionalText.pipe(guid.optional()),
  MicrosoftAppPassword: optionalText,
  AllowedTenantIds: optionalText,
  TableStorageConnection: optionalText,
  TableStorageConnection__tableServiceUri: optionalText.pipe(z.url().optional()),
  TableStorageConnection__clientId: optionalText.pipe(guid.optional()),
  TableNamePrefix: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]{0,30}$/, "must be letters and digits, starting with a letter")
    .default("Herald"),
  ServiceBusConnection: optionalText,
  ServiceBusConnection__fullyQualifiedNamespace: optionalText,
  ServiceBusConnection__clientId: optionalText.pipe(guid.optional()),
  NotificationsQueueName: z.string().trim().min(1).default("notifications"),
  /** Herald's internal, session-enabled work queue: only Herald's identity sends to it. */
  WorkQueueName: z.string().trim().min(1).default("herald-work"),
  /**
   * Extra Teams service hosts the bot may call (comma-separated host names), beside the public,
   * GCC, GCC High and DoD hosts Herald knows. Only read when MicrosoftAppId is set.
   */
  TeamsServiceHosts: optionalText,
  MaxDeliveryAttempts: positiveInt(6),
  WelcomeLeaseSeconds: positiveInt(120),
  /**
   * Install the Teams app through Microsoft Graph for recipients Herald has never seen, then
   * message them. Off by default: it needs Graph application permissions (`npm run grant:graph`).
   */
  ProactiveInstall: trueOrFalse("false"),
  /** The Teams app's manifest id: the org catalog's `externalId`. Required with ProactiveInstall. */
  TeamsAppId: optionalText.pipe(guid.optional()),
  /** The app's id in the org app catalog, when known: skips the catalog lookup (and its permission). */
  TeamsAppCatalogId: optionalText.pipe(guid.optional()),
  /** Microsoft Graph's origin; national clouds have their own. */
  GraphEndpoint: z.string().trim().min(1).default(DEFAULT_GRAPH_ENDPOINT),
  /**
   * Every transition is recorded as a CloudEvent with its state change and published to the
   * events topic (and the webhook, when one is set). Costs one Table request per notification
   * (the read-receipt index); `false` records and publishes nothing.
   */
  NotificationEvents: trueOrFalse("true"),
  /** The Service Bus topic the events are published to (a topic of the local broker locally). */
  EventTopicName: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,259}$/, "must be a Service Bus topic name")
    .default("notification-events"),
  /** Where every event is also POSTed, signed per Standard Webhooks; empty: no webhook. */
  EventWebhookUrl: optionalText,
  /** The webhook's signing secret, `whsec_<base64>` (a Key Vault reference in Azure). */
  EventWebhookSecret: optionalText,
  WEBSITE_SITE_NAME: optionalText,
  LocalQueueDirectory: optionalText,
});

/** Settings the Functions host or the platform reads, not Herald's code. */
export const HOST_SETTINGS = [
  "AzureWebJobsStorage",
  "FUNCTIONS_WORKER_RUNTIME",
  "FUNCTIONS_EXTENSION_VERSION",
  "APPLICATIONINSIGHTS_CONNECTION_STRING",
  "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
  "ServiceBusConnection__credential",
  "languageWorkers__node__arguments",
] as const;

/** Settings of the platform itself that Herald reads but never sets. */
export const PLATFORM_SETTINGS = ["WEBSITE_SITE_NAME"] as const;

/** Settings only `npm start` uses (the local queue); never set in Azure. */
export const LOCAL_ONLY_SETTINGS = ["LocalQueueDirectory"] as const;

export const SETTING_NAMES = Object.keys(settingsSchema.shape) as (keyof Settings)[];

export type Settings = z.infer<typeof settingsSchema>;

export type ServiceBusConnection =
  | { kind: "connectionString"; connectionString: string }
  | { kind: "identity"; fullyQualifiedNamespace: string; clientId?: string }
  | { kind: "none" };

/** Delivery events: recorded with each transition, published to the topic and the webhook. */
export interface EventsConfig {
  readonly enabled: boolean;
  readonly topicName: string;
  /** The signed webhook, when one is configured (and events are on). */
  readonly webhook: { readonly url: string; readonly key: Buffer } | undefined;
}

/** Microsoft Graph: resolving never-seen users and groups, installing the app for them. */
export interface GraphConfig {
  readonly proactiveInstall: boolean;
  /** Manifest id of the Teams app (catalog `externalId`); always set when proactiveInstall is. */
  readonly teamsAppId: string | undefined;
  /** Catalog id given by the operator; undefined: look it up by `teamsAppId`. */
  readonly teamsAppCatalogId: string | undefined;
  /** `scheme://host[:port]`, no trailing slash; token scope is `${endpoint}/.default`. */
  readonly endpoint: string;
  /** False in anonymous local mode: Graph calls go without a token (to loopback only). */
  readonly authenticated: boolean;
}

export interface Config {
  readonly bot: BotIdentity;
  readonly allowedTenantIds: ReadonlySet<string> | undefined;
  readonly tables: TableConnection;
  readonly tableNamePrefix: string;
  readonly serviceBus: ServiceBusConnection;
  readonly queueName: string;
  /** The internal work queue (sessions: one tenant per session). */
  readonly workQueueName: string;
  /** Lower-cased extra host names outbound Teams calls may go to (beside Teams' own). */
  readonly extraTeamsServiceHosts: readonly string[];
  readonly maxDeliveryAttempts: number;
  readonly welcomeLeaseMs: number;
  readonly runningInAzure: boolean;
  /** Folder of the durable local queue `npm start` drains; unset in Azure. */
  readonly localQueueDirectory: string | undefined;
  readonly graph: GraphConfig;
  readonly events: EventsConfig;
}

function fail(problems: string[]): never {
  throw new ConfigError(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
}

/** Reads and validates the settings once; the message names every bad or missing setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = settingsSchema.safeParse(env);
  if (!parsed.success) {
    fail(parsed.error.issues.map((i) => `${i.path.join(".") || "(settings)"}: ${i.message}`));
  }
  const s = parsed.data;
  const problems: string[] = [];
  const runningInAzure = s.WEBSITE_SITE_NAME !== undefined;

  let bot: Config["bot"] = { kind: "anonymous" };
  if (s.MicrosoftAppId !== undefined) {
    if (s.MicrosoftAppTenantId === undefined) {
      problems.push(
        "MicrosoftAppTenantId: required when MicrosoftAppId is set (single-tenant bot)",
      );
    }
    if (s.MicrosoftAppType === "SingleTenant" && s.MicrosoftAppPassword === undefined) {
      problems.push("MicrosoftAppPassword: required when MicrosoftAppType is SingleTenant");
    }
    bot = {
      kind: "authenticated",
      appId: s.MicrosoftAppId,
      appType: s.MicrosoftAppType,
      tenantId: s.MicrosoftAppTenantId ?? "",
      ...(s.MicrosoftAppPassword !== undefined ? { password: s.MicrosoftAppPassword } : {}),
    };
  } else if (runningInAzure) {
    problems.push(
      "MicrosoftAppId: required in Azure; anonymous bot requests are for local development only",
    );
  }

  let tables: TableConnection | undefined;
  if (s.TableStorageConnection !== undefined) {
    tables = { kind: "connectionString", connectionString: s.TableStorageConnection };
  } else if (s.TableStorageConnection__tableServiceUri !== undefined) {
    tables = {
      kind: "identity",
      endpoint: s.TableStorageConnection__tableServiceUri,
      ...(s.TableStorageConnection__clientId !== undefined
        ? { clientId: s.TableStorageConnection__clientId }
        : {}),
    };
  } else {
    problems.push(
      "TableStorageConnection__tableServiceUri (Azure) or TableStorageConnection (local connection string): one is required",
    );
  }

  let serviceBus: ServiceBusConnection = { kind: "none" };
  if (s.ServiceBusConnection !== undefined) {
    serviceBus = { kind: "connectionString", connectionString: s.ServiceBusConnection };
  } else if (s.ServiceBusConnection__fullyQualifiedNamespace !== undefined) {
    serviceBus = {
      kind: "identity",
      fullyQualifiedNamespace: s.ServiceBusConnection__fullyQualifiedNamespace,
      ...(s.ServiceBusConnection__clientId !== undefined
        ? { clientId: s.ServiceBusConnection__clientId }
        : {}),
    };
  } else if (runningInAzure) {
    problems.push("ServiceBusConnection__fullyQualifiedNamespace: required in Azure");
  }

  const allowed = s.AllowedTenantIds?.split(/[,;\s]+/).filter((t) => t !== "");
  if (allowed !== undefined) {
    const bad = allowed.filter((t) => !guid.safeParse(t).success);
    if (bad.length > 0) problems.push(`AllowedTenantIds: not GUIDs: ${bad.join(", ")}`);
  }

  const extraHosts = (s.TeamsServiceHosts?.split(/[,;\s]+/) ?? [])
    .filter((h) => h !== "")
    .map((h) => h.toLowerCase());
  const badHosts = extraHosts.filter(
    (h) => !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(h),
  );
  if (badHosts.length > 0)
    problems.push(`TeamsServiceHosts: not host names: ${badHosts.join(", ")}`);
  if (s.WorkQueueName === s.NotificationsQueueName)
    problems.push(
      "WorkQueueName: must differ from NotificationsQueueName (LOB apps may send to that one)",
    );

  const graph = graphConfig(s, bot.kind === "authenticated", problems);
  const events = eventsConfig(s, bot.kind === "anonymous" && !runningInAzure, problems);

  if (problems.length > 0 || tables === undefined) fail(problems);
  return {
    bot,
    allowedTenantIds:
      allowed && allowed.length > 0 ? new Set(allowed.map((t) => t.toLowerCase())) : undefined,
    tables,
    tableNamePrefix: s.TableNamePrefix,
    serviceBus,
    queueName: s.NotificationsQueueName,
    workQueueName: s.WorkQueueName,
    extraTeamsServiceHosts: extraHosts,
    maxDeliveryAttempts: s.MaxDeliveryAttempts,
    welcomeLeaseMs: s.WelcomeLeaseSeconds * 1000,
    runningInAzure,
    localQueueDirectory: s.LocalQueueDirectory,
    graph,
    events,
  };
}

function eventsConfig(s: Settings, local: boolean, problems: string[]): EventsConfig {
  const enabled = s.NotificationEvents === "true";
  let webhook: EventsConfig["webhook"];
  if (s.EventWebhookUrl !== undefined) {
    const url = checkWebhookUrl(s.EventWebhookUrl, { local });
    if (!url.ok) problems.push(`EventWebhookUrl: ${url.reason}`);
    const secret =
      s.EventWebhookSecret === undefined
        ? ({ ok: false, reason: "required when EventWebhookUrl is set" } as const)
        : parseWebhookSecret(s.EventWebhookSecret);
    if (!secret.ok) problems.push(`EventWebhookSecret: ${secret.reason}`);
    if (url.ok && secret.ok && enabled) webhook = { url: url.url, key: secret.key };
  }
  return { enabled, topicName: s.EventTopicName, webhook };
}

function graphConfig(s: Settings, authenticated: boolean, problems: string[]): GraphConfig {
  const proactiveInstall = s.ProactiveInstall === "true";
  if (proactiveInstall && s.TeamsAppId === undefined)
    problems.push(
      "TeamsAppId: required when ProactiveInstall is true (the Teams app's manifest id, which Graph's app catalog calls externalId; Bicep output teamsAppId)",
    );
  let verdict = checkGraphEndpoint(s.GraphEndpoint, { authenticated });
  // Anonymous mode calls Graph only with ProactiveInstall on; until then the default https
  // endpoint is no error there, only a malformed one is.
  if (!verdict.ok && !authenticated && !proactiveInstall) {
    const asDeployed = checkGraphEndpoint(s.GraphEndpoint, { authenticated: true });
    if (asDeployed.ok) verdict = asDeployed;
  }
  if (!verdict.ok) problems.push(`GraphEndpoint: ${verdict.reason}`);
  return {
    proactiveInstall,
    teamsAppId: s.TeamsAppId,
    teamsAppCatalogId: s.TeamsAppCatalogId,
    endpoint: verdict.ok ? verdict.origin : s.GraphEndpoint.replace(/\/+$/, ""),
    authenticated,
  };
}

/** Settings never to print: connection strings and secrets. */
export function describeConfig(config: Config): Record<string, string> {
  return {
    bot:
      config.bot.kind === "anonymous"
        ? "anonymous (local only)"
        : `${config.bot.appType} ${config.bot.appId}`,
    tables: config.tables.kind === "identity" ? config.tables.endpoint : "connection string",
    serviceBus:
      config.serviceBus.kind === "identity"
        ? config.serviceBus.fullyQualifiedNamespace
        : config.serviceBus.kind,
    queue: config.queueName,
    workQueue: config.workQueueName,
    allowedTenants: config.allowedTenantIds ? [...config.allowedTenantIds].join(",") : "any",
    proactiveInstall: config.graph.proactiveInstall
      ? `on (${config.graph.endpoint}${config.graph.authenticated ? "" : ", anonymous"})`
      : "off",
    events: config.events.enabled
      ? `topic ${config.events.topicName}${config.events.webhook !== undefined ? `, webhook ${new URL(config.events.webhook.url).origin}` : ""}`
      : "off",
  };
}
