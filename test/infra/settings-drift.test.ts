import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { FUNCTION_APP_NODE_OPTIONS } from "../../bench/fork";
import {
  HOST_SETTINGS,
  loadConfig,
  LOCAL_ONLY_SETTINGS,
  PLATFORM_SETTINGS,
  SETTING_NAMES,
  settingsSchema,
} from "../../shared/config";
import { registeredFunctions } from "../../shared/registry";
import { TABLES } from "../../shared/store/table-factory";
import { property, REPO_ROOT, stringLiteral } from "./support/bicep";
import { BicepProject, type Entry } from "./support/bicep-project";
import {
  appSettings,
  at,
  BUILT_IN_ROLES,
  resourceOfType,
  resourcesOfType,
  type RoleGrant,
  roleGrants,
  textOf,
} from "./support/infra-facts";

/**
 * The code's settings (shared/config.ts), local.settings.sample.json and the Function App's app
 * settings in Bicep must name the same things; queue and table names and the roles the code
 * needs must match too. Exceptions are listed here, each with its reason.
 */

/** Connection strings are for local development; Azure uses the identity-based form. */
const LOCAL_CONNECTION_STRINGS = ["TableStorageConnection", "ServiceBusConnection"];

/**
 * Secrets set only when they are needed, each from a @secure() parameter: the SingleTenant bot's
 * client secret, the event webhook's signing secret (with a webhook URL).
 */
const CONDITIONAL_SECRETS: Record<string, RegExp> = {
  MicrosoftAppPassword: /^botAppType == 'SingleTenant' \? (?<param>botAppPassword) : ''$/,
  EventWebhookSecret: /^empty\(eventWebhookUrl\) \? '' : (?<param>eventWebhookSecret)$/,
};
const SECRET_SETTINGS = Object.keys(CONDITIONAL_SECRETS);

/** `<connection>__<property>` settings the Functions host and the Azure SDKs read for identity-based connections. */
const IDENTITY_CONNECTIONS = [
  "AzureWebJobsStorage",
  "ServiceBusConnection",
  "TableStorageConnection",
];
const IDENTITY_PROPERTIES = [
  "accountName",
  "blobServiceUri",
  "queueServiceUri",
  "tableServiceUri",
  "fullyQualifiedNamespace",
  "credential",
  "clientId",
];
const IDENTITY_SUB_SETTINGS = IDENTITY_CONNECTIONS.flatMap((c) =>
  IDENTITY_PROPERTIES.map((p) => `${c}__${p}`),
);

/** Flex Consumption rejects these as app settings: the runtime is set in functionAppConfig. */
const NOT_ALLOWED_ON_FLEX = [
  "FUNCTIONS_WORKER_RUNTIME",
  "FUNCTIONS_EXTENSION_VERSION",
  "WEBSITE_RUN_FROM_PACKAGE",
  "WEBSITE_NODE_DEFAULT_VERSION",
  "WEBSITE_CONTENTSHARE",
  "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
];

const codeSettings: string[] = [...SETTING_NAMES];
const expectedInAzure = codeSettings.filter(
  (s) =>
    !(PLATFORM_SETTINGS as readonly string[]).includes(s) &&
    !(LOCAL_ONLY_SETTINGS as readonly string[]).includes(s) &&
    !LOCAL_CONNECTION_STRINGS.includes(s) &&
    !SECRET_SETTINGS.includes(s),
);
const allowedInAzure = new Set<string>([
  ...codeSettings,
  ...HOST_SETTINGS,
  ...IDENTITY_SUB_SETTINGS,
]);

function codeDefault(name: keyof typeof settingsSchema.shape): unknown {
  return settingsSchema.shape[name].parse(undefined);
}

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(path.join(REPO_ROOT, file), "utf8"));
}

let project: BicepProject;
let settings: Entry[];
let byName: Map<string, Entry>;

beforeAll(async () => {
  project = await BicepProject.load();
  settings = appSettings(project);
  byName = new Map(settings.map((e) => [e.name, e]));
});

describe("Function App settings in Bicep", () => {
  it("sets every setting the code reads, unconditionally", () => {
    const missing = expectedInAzure.filter((s) => !byName.has(s));
    expect(missing).toEqual([]);
    const conditional = expectedInAzure.filter((s) => byName.get(s)?.conditional === true);
    expect(conditional).toEqual([]);
  });

  it("sets nothing the code, the host or an identity-based connection does not read", () => {
    const unknown = settings
      .filter((e) => !allowedInAzure.has(e.name))
      .map((e) => `${e.name} (${e.where})`);
    expect(unknown).toEqual([]);
  });

  it("leaves out local-only settings, connection strings and what the platform sets itself", () => {
    const forbidden = [
      ...PLATFORM_SETTINGS,
      ...LOCAL_ONLY_SETTINGS,
      ...LOCAL_CONNECTION_STRINGS,
      ...NOT_ALLOWED_ON_FLEX,
      "APPINSIGHTS_INSTRUMENTATIONKEY",
    ];
    expect(settings.filter((e) => forbidden.includes(e.name)).map((e) => e.name)).toEqual([]);
  });

  it.each(Object.entries(CONDITIONAL_SECRETS))(
    "sets %s only conditionally, from a @secure() parameter",
    (name, passedAs) => {
      const entry = byName.get(name);
      expect(entry?.conditional).toBe(true);
      const source = entry!.value;
      const param = source.doc.find("param", source.node.text);
      expect(param?.decorators.has("secure")).toBe(true);
      // main.bicep passes it only when it is needed.
      const passed = project.argumentFor(source.doc, source.node.text);
      const match = passedAs.exec(passed?.node.text ?? "");
      expect(match).not.toBeNull();
      const top = project.main.get("param", match!.groups!.param!);
      expect(top.decorators.has("secure")).toBe(true);
    },
  );

  it("connects with the Function App's managed identity, never a key", () => {
    for (const entry of settings.filter((e) => e.name.endsWith("__clientId"))) {
      expect([entry.name, textOf(project, entry.value)]).toEqual([
        entry.name,
        "identity.outputs.clientId",
      ]);
    }
    for (const entry of settings.filter((e) => e.name.endsWith("__credential"))) {
      expect([entry.name, project.literal(entry.value)]).toEqual([entry.name, "managedidentity"]);
    }
    const functionApp = project.symbolFor("function-app.bicep");
    const params = project.moduleParams(functionApp).node;
    expect(property(params, "identityResourceId")?.text).toBe("identity.outputs.resourceId");
    expect(property(params, "identityClientId")?.text).toBe("identity.outputs.clientId");
  });

  it("uses the managed identity as the bot app id when the bot is UserAssignedMSI", () => {
    const appId = byName.get("MicrosoftAppId")!;
    expect(textOf(project, appId.value)).toBe(
      "botAppType == 'UserAssignedMSI' ? identity.outputs.clientId : botAppId",
    );
    const botParams = project.moduleParams(project.symbolFor("bot.bicep")).node;
    expect(textOf(project, { doc: project.main, node: property(botParams, "appId")! })).toBe(
      textOf(project, appId.value),
    );
    expect(property(botParams, "msiResourceId")?.text).toBe("identity.outputs.resourceId");
  });

  it("authenticates Application Insights telemetry with Entra ID, without an instrumentation key", () => {
    expect(byName.has("APPLICATIONINSIGHTS_CONNECTION_STRING")).toBe(true);
    expect(textOf(project, byName.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")!.value)).toBe(
      "'ClientId=${identityClientId};Authorization=AAD'",
    );
  });

  it("offers exactly the bot app types the code accepts", () => {
    const allowed = project.main
      .get("param", "botAppType")
      .decorators.get("allowed")?.[0]
      ?.namedChildren.map((n) => stringLiteral(n));
    expect(allowed?.sort()).toEqual(
      [...settingsSchema.shape.MicrosoftAppType.unwrap().options].sort(),
    );
    expect(
      project.literal({ doc: project.main, node: byName.get("MicrosoftAppType")!.value.node }),
    ).toBe(codeDefault("MicrosoftAppType"));
  });

  it("defaults to the same values as the code", () => {
    const literal = (name: string) => project.literal(byName.get(name)!.value);
    expect(literal("TableNamePrefix")).toBe(codeDefault("TableNamePrefix"));
    expect(literal("NotificationsQueueName")).toBe(codeDefault("NotificationsQueueName"));
    // Numbers become strings with string(): the parameter behind it has the code's default.
    for (const [setting, param] of [
      ["MaxDeliveryAttempts", "maxDeliveryCount"],
      ["WelcomeLeaseSeconds", "welcomeLeaseSeconds"],
    ] as const) {
      expect(byName.get(setting)!.value.node.text).toBe(`string(${param})`);
      const fallback = project.main.valueOf(project.main.get("param", param));
      expect(Number(fallback?.text)).toBe(codeDefault(setting));
    }
  });

  it("gives the Node worker the heap options the benchmark measures it with", () => {
    expect(project.literal(byName.get("languageWorkers__node__arguments")!.value)).toBe(
      FUNCTION_APP_NODE_OPTIONS.join(" "),
    );
  });

  it("leaves proactive install off and points at the public Graph endpoint by default, as the code does", () => {
    expect(project.literal(byName.get("GraphEndpoint")!.value)).toBe(codeDefault("GraphEndpoint"));
    // A bool becomes "true"/"false" with string(): the parameter behind it has the code's default.
    expect(byName.get("ProactiveInstall")!.value.node.text).toBe("string(proactiveInstall)");
    const fallback = project.main.valueOf(project.main.get("param", "proactiveInstall"));
    expect(fallback?.text).toBe(codeDefault("ProactiveInstall"));
  });

  it("turns delivery events on and names the events topic by default, as the code does", () => {
    expect(byName.get("NotificationEvents")!.value.node.text).toBe("string(notificationEvents)");
    const fallback = project.main.valueOf(project.main.get("param", "notificationEvents"));
    expect(fallback?.text).toBe(codeDefault("NotificationEvents"));
    expect(project.literal(byName.get("EventTopicName")!.value)).toBe(
      codeDefault("EventTopicName"),
    );
    expect(project.literal(byName.get("EventWebhookUrl")!.value)).toBe("");
  });

  it("gives Herald the same Teams app id the deployment publishes for the manifest", () => {
    expect(byName.get("TeamsAppId")!.value.node.text).toBe("heraldTeamsAppId");
    const output = project.main.get("output", "teamsAppId");
    expect(project.main.valueOf(output)?.text).toBe("heraldTeamsAppId");
  });
});

describe("local.settings.sample.json", () => {
  const sample = readJson("local.settings.sample.json") as {
    IsEncrypted: boolean;
    Values: Record<string, string>;
  };
  const keys = Object.keys(sample.Values);

  it("lists every setting the code reads, except what the platform sets", () => {
    const expected = codeSettings.filter(
      (s) => !(PLATFORM_SETTINGS as readonly string[]).includes(s),
    );
    expect(expected.filter((s) => !keys.includes(s))).toEqual([]);
    expect(keys.filter((k) => (PLATFORM_SETTINGS as readonly string[]).includes(k))).toEqual([]);
  });

  it("lists nothing the code or the Functions host does not read", () => {
    const known = new Set<string>([...codeSettings, ...HOST_SETTINGS]);
    expect(keys.filter((k) => !known.has(k))).toEqual([]);
  });

  it("is a valid local configuration: anonymous bot, Azurite tables, the local queue", () => {
    expect(sample.IsEncrypted).toBe(false);
    expect(sample.Values.FUNCTIONS_WORKER_RUNTIME).toBe("node");
    expect(sample.Values.AzureWebJobsStorage).toBe("UseDevelopmentStorage=true");
    expect(sample.Values.TableStorageConnection).toContain("TableEndpoint=http://127.0.0.1:10002/");
    const config = loadConfig(sample.Values);
    expect(config.bot).toEqual({ kind: "anonymous" });
    expect(config.tables.kind).toBe("connectionString");
    expect(config.queueName).toBe(codeDefault("NotificationsQueueName"));
    expect(config.localQueueDirectory).toBeDefined();
    expect(config.runningInAzure).toBe(false);
  });
});

describe("queue and table names", () => {
  it.each([
    ["NotificationsQueueName", "notificationsQueueName", "notificationsQueue"],
    ["WorkQueueName", "workQueueName", "workQueue"],
  ] as const)(
    "name the same %s queue in the code, the app settings and the Service Bus module",
    (setting, moduleParam, resourceSymbol) => {
      const queueName = codeDefault(setting);
      const serviceBus = project.symbolFor("service-bus.bicep");
      const passed = property(project.moduleParams(serviceBus).node, moduleParam)!;
      expect(passed.text).toBe(byName.get(setting)!.value.node.text);
      expect(project.literal({ doc: project.main, node: passed })).toBe(queueName);

      const queue = resourcesOfType(
        project,
        "service-bus.bicep",
        "Microsoft.ServiceBus/namespaces/queues",
      ).find((q) => q.declaration.name === resourceSymbol)!;
      expect(project.literal({ doc: queue.doc, node: property(queue.body, "name")! })).toBe(
        queueName,
      );
    },
  );

  it("keep the intake and the work queue apart by default", () => {
    expect(codeDefault("WorkQueueName")).not.toBe(codeDefault("NotificationsQueueName"));
  });

  it("bind the Service Bus trigger to the queue setting and the identity-based connection", () => {
    const file = path.join(REPO_ROOT, "functions", "notifications.ts");
    expect(existsSync(file)).toBe(true);
    // Loaded here, not imported at the top: the file registers the trigger as it loads.
    jest.requireActual(file);
    const trigger = registeredFunctions().find((r) => r.kind === "serviceBusQueue");
    expect(trigger?.kind === "serviceBusQueue" && trigger.options.queueName).toBe(
      "%NotificationsQueueName%",
    );
    expect(trigger?.kind === "serviceBusQueue" && trigger.options.connection).toBe(
      "ServiceBusConnection",
    );
  });

  it("name the queue in host.json only as the setting, if at all", () => {
    const file = path.join(REPO_ROOT, "host.json");
    if (!existsSync(file)) return;
    const queueValues: string[] = [];
    const walk = (value: unknown, key: string): void => {
      if (typeof value === "string" && /queue/i.test(key)) queueValues.push(value);
      if (value !== null && typeof value === "object") {
        for (const [k, v] of Object.entries(value)) walk(v, k);
      }
    };
    walk(readJson("host.json"), "");
    for (const value of queueValues) {
      expect(["%NotificationsQueueName%", codeDefault("NotificationsQueueName")]).toContain(value);
    }
  });

  it("create one table per name in TABLES, with the code's prefix", () => {
    const heraldTables = project.items({
      doc: project.main,
      node: project.main.valueOf(project.main.get("var", "heraldTables"))!,
    });
    const bicepNames = heraldTables.map(({ item }) => project.literal(item));
    expect([...bicepNames].sort()).toEqual(Object.values(TABLES).sort());

    const storage = project.symbolFor("storage.bicep");
    const tableNames = property(project.moduleParams(storage).node, "tableNames")!;
    // [for table in heraldTables: '${tableNamePrefix}${table}']
    expect(tableNames.type).toBe("for_statement");
    const [loopVariable, source, body] = tableNames.namedChildren;
    expect(source?.text).toBe("heraldTables");
    expect(body?.text).toBe(`'\${tableNamePrefix}\${${loopVariable?.text}}'`);
    expect(byName.get("TableNamePrefix")!.value.node.text).toBe("tableNamePrefix");

    const tables = resourceOfType(
      project,
      "storage.bicep",
      "Microsoft.Storage/storageAccounts/tableServices/tables",
    );
    expect(tables.declaration.node.text).toMatch(/\[\s*for (\w+) in tableNames:[\s\S]*name: \1\s/);

    const prefix = String(codeDefault("TableNamePrefix"));
    for (const name of Object.values(TABLES)) {
      expect(`${prefix}${name}`).toMatch(/^[A-Za-z][A-Za-z0-9]{2,62}$/);
    }
  });
});

describe("roles", () => {
  const resourcesOf = (type: string) => resourcesOfType(project, "service-bus.bicep", type);
  const identity = "identity.outputs.principalId";
  const intake = "notificationsQueueRoleAssignments";
  const work = "workQueueRoleAssignments";
  const topic = "eventTopicRoleAssignments";

  function grants(): RoleGrant[] {
    return [
      ...roleGrants(project, "storage.bicep", "roleAssignments"),
      ...roleGrants(project, "service-bus.bicep", intake),
      ...roleGrants(project, "service-bus.bicep", work),
      ...roleGrants(project, "service-bus.bicep", topic),
      ...roleGrants(project, "monitoring.bicep", "roleAssignments"),
    ];
  }

  function rolesOf(principal: string, param: string): string[] {
    return grants()
      .filter((g) => g.principal === principal && g.param === param)
      .map((g) => g.roleDefinitionId ?? "")
      .sort();
  }

  it("use the real built-in role ids", () => {
    const declared = project.main.valueOf(project.main.get("var", "builtInRoles"))!;
    for (const [name, id] of Object.entries(BUILT_IN_ROLES)) {
      expect([name, stringLiteral(property(declared, name)!)]).toEqual([name, id]);
    }
  });

  it.each([
    [
      "storage.bicep",
      "Table Storage (TableStorageConnection)",
      BUILT_IN_ROLES.storageTableDataContributor,
    ],
    ["storage.bicep", "host storage and deployment package", BUILT_IN_ROLES.storageBlobDataOwner],
    [
      "monitoring.bicep",
      "Entra-authenticated telemetry",
      BUILT_IN_ROLES.monitoringMetricsPublisher,
    ],
  ])("grant the function identity what %s needs for %s", (file, _why, role) => {
    const match = grants().find(
      (g) =>
        g.module === project.symbolFor(file) &&
        g.roleDefinitionId === role &&
        g.principal === identity,
    );
    expect(match?.conditional).toBe(false);
  });

  it("grant the function identity Data Receiver and Data Owner (target-based scaling) on the intake queue, but not Data Sender", () => {
    expect(rolesOf(identity, intake)).toEqual(
      [BUILT_IN_ROLES.serviceBusDataReceiver, BUILT_IN_ROLES.serviceBusDataOwner].sort(),
    );
  });

  it("grant the function identity Data Receiver, Data Owner (target-based scaling) and Data Sender on the work queue", () => {
    expect(rolesOf(identity, work)).toEqual(
      [
        BUILT_IN_ROLES.serviceBusDataReceiver,
        BUILT_IN_ROLES.serviceBusDataOwner,
        BUILT_IN_ROLES.serviceBusDataSender,
      ].sort(),
    );
    expect(grants().filter((g) => g.param === work && g.conditional)).toEqual([]);
  });

  it("grant the function identity only Data Sender on the events topic", () => {
    expect(rolesOf(identity, topic)).toEqual([BUILT_IN_ROLES.serviceBusDataSender]);
    expect(grants().filter((g) => g.param === topic && g.principal !== identity)).toEqual([]);
  });

  it("grant each event subscriber Data Receiver on its own subscription, after its filter", () => {
    const [roles] = resourcesOf("Microsoft.Authorization/roleAssignments").filter(
      (r) => r.declaration.name === "eventSubscriberRoles",
    );
    expect(roles).toBeDefined();
    const loop = roles!.declaration.node.namedChildren.at(-1)!;
    expect(loop.type).toBe("for_statement");
    expect(loop.text).toMatch(/^\[\s*for \(subscriber, i\) in eventSubscribers:/);
    expect(property(roles!.body, "scope")?.text).toBe("eventSubscriptions[i]");
    expect(at(roles!.body, "properties.principalId")?.text).toBe("subscriber.principalId");
    expect(at(roles!.body, "properties.roleDefinitionId")?.text).toContain(
      "serviceBusDataReceiver",
    );
    expect(property(roles!.body, "dependsOn")?.text).toContain("eventSubscriptionFilters[i]");
    const receiver = roles!.doc.valueOf(roles!.doc.get("var", "serviceBusDataReceiver"));
    expect(stringLiteral(receiver!)).toBe(BUILT_IN_ROLES.serviceBusDataReceiver);
  });

  it("grant an optional LOB principal Data Sender on the intake queue and nothing else", () => {
    const lob = grants().filter((g) => g.principal === "lobSenderPrincipalId");
    expect(lob).toHaveLength(1);
    expect(lob[0]).toMatchObject({
      module: project.symbolFor("service-bus.bicep"),
      param: intake,
      roleDefinitionId: BUILT_IN_ROLES.serviceBusDataSender,
      conditional: true,
    });
  });

  it("grant nothing beyond what the code needs", () => {
    const needed = new Set<string>(Object.values(BUILT_IN_ROLES));
    expect(grants().filter((g) => !needed.has(g.roleDefinitionId ?? ""))).toEqual([]);
  });

  it.each([
    ["storage.bicep", "roleAssignments", "Microsoft.Storage/storageAccounts"],
    ["service-bus.bicep", intake, "Microsoft.ServiceBus/namespaces/queues"],
    ["service-bus.bicep", work, "Microsoft.ServiceBus/namespaces/queues"],
    ["service-bus.bicep", topic, "Microsoft.ServiceBus/namespaces/topics"],
    ["monitoring.bicep", "roleAssignments", "Microsoft.Insights/components"],
  ])("scope the role assignments of %s to the resource (%s on %s)", (file, param, scopeType) => {
    const assignments = resourcesOfType(
      project,
      file,
      "Microsoft.Authorization/roleAssignments",
    ).find((r) => r.declaration.node.namedChildren.at(-1)?.namedChildren[1]?.text === param)!;
    const loop = assignments.declaration.node.namedChildren.at(-1)!;
    expect(loop.type).toBe("for_statement");
    expect(loop.namedChildren[1]?.text).toBe(param);
    const scope = property(assignments.body, "scope")!.text;
    const target = assignments.doc.get("resource", scope);
    expect(assignments.doc.targetOf(target)).toMatch(new RegExp(`^${scopeType}@`));
    expect(property(assignments.body, "name")?.text).toMatch(
      new RegExp(
        `^guid\\(${scope}\\.id, assignment\\.principalId, assignment\\.roleDefinitionId\\)$`,
      ),
    );
    const roleDefinitionId = at(assignments.body, "properties.roleDefinitionId")!.text;
    expect(roleDefinitionId).toContain(
      "subscriptionResourceId('Microsoft.Authorization/roleDefinitions'",
    );
  });
});
