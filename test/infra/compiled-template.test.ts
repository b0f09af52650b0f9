import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import {
  BICEP_VERSION,
  HOW_TO_ENABLE,
  INFRA_DIR,
  locateBicep,
  parseDiagnostics,
} from "../../infra/bicep-cli";
import {
  HOST_SETTINGS,
  LOCAL_ONLY_SETTINGS,
  PLATFORM_SETTINGS,
  SETTING_NAMES,
} from "../../shared/config";
import { LocalTopic } from "../../shared/queue/local-topic";
import {
  allResources,
  type ArmResource,
  type ArmTemplate,
  armText,
  arrayItems,
  evaluateArm,
  expressionOf,
  modulesOf,
  objectKeys,
  propertyText,
  type Scope,
} from "./support/arm";
import { BUILT_IN_ROLES } from "./support/infra-facts";

/**
 * The template as Azure receives it: infra/main.bicep compiled by the real Bicep CLI, read as
 * ARM JSON (modules are nested deployments). The tree-sitter tests read the source; these read
 * what the compiler made of it, so a module wiring mistake cannot hide behind the syntax.
 */

const located = locateBicep({ restoreWithDotnet: true });
const describeCompiled = located.kind === "found" ? describe : describe.skip;
if (located.kind === "missing") {
  console.warn(
    `Skipped the compiled-template tests: no Bicep CLI (${located.reason}). ${HOW_TO_ENABLE}`,
  );
}

const FLEX_REJECTED_SITE_CONFIG = [
  "ftpsState",
  "alwaysOn",
  "linuxFxVersion",
  "use32BitWorkerProcess",
];
const FLEX_FORBIDDEN_SETTINGS = [
  "FUNCTIONS_WORKER_RUNTIME",
  "FUNCTIONS_EXTENSION_VERSION",
  "WEBSITE_NODE_DEFAULT_VERSION",
  "WEBSITE_RUN_FROM_PACKAGE",
];

let outDir: string;
let buildOutput = "";
let template: ArmTemplate;
let root: Scope;

beforeAll(() => {
  if (located.kind !== "found") return;
  outDir = mkdtempSync(path.join(tmpdir(), "herald-arm-"));
  const outFile = path.join(outDir, "main.json");
  const build = spawnSync(
    located.file,
    ["build", path.join(INFRA_DIR, "main.bicep"), "--outfile", outFile],
    { encoding: "utf8" },
  );
  const params = spawnSync(
    located.file,
    [
      "build-params",
      path.join(INFRA_DIR, "main.bicepparam"),
      "--outfile",
      path.join(outDir, "main.parameters.json"),
    ],
    { encoding: "utf8" },
  );
  buildOutput = [build, params].map((r) => `${r.stdout}${r.stderr}`).join("");
  if (build.status !== 0 || params.status !== 0) throw new Error(buildOutput);
  template = JSON.parse(readFileSync(outFile, "utf8")) as ArmTemplate;
  root = { template };
}, 120_000);

afterAll(() => {
  if (outDir !== undefined) rmSync(outDir, { recursive: true, force: true });
});

function moduleNamed(symbol: string): { resource: ArmResource; scope: Scope } {
  const resources = template.resources as Record<string, ArmResource>;
  const resource = resources[symbol];
  const found = modulesOf(root).find((m) => m.resource === resource);
  if (found === undefined) throw new Error(`no module ${symbol} in the compiled template`);
  return found;
}

function ofType(type: string): { resource: ArmResource; scope: Scope }[] {
  return allResources(root).filter((r) => r.resource.type === type);
}

/** The built-in role a `variables('builtInRoles').x` expression names, looked up in main.bicep. */
function roleId(text: string | undefined): string | undefined {
  const name = /^variables\('builtInRoles'\)\.(\w+)$/.exec(text ?? "")?.[1];
  const roles = template.variables?.builtInRoles as Record<string, string> | undefined;
  return name === undefined ? text : roles?.[name];
}

interface Grant {
  scope: string;
  principal: string;
  role: string | undefined;
  conditional: boolean;
}

/** Every role assignment: its scope, and one row per item of the array its copy loop walks. */
function grants(): Grant[] {
  return ofType("Microsoft.Authorization/roleAssignments").flatMap(({ resource, scope }) => {
    const count = expressionOf(resource.copy?.count);
    // copy.count is length(parameters('<array parameter>'))
    const arrayParam = count?.kind === "call" ? count.args[0] : undefined;
    if (arrayParam === undefined) throw new Error(`${resource.name}: not a copy loop`);
    const scopeText = armText(expressionOf(resource.scope)!);
    return arrayItems(`[${armText(arrayParam)}]`, scope).map((item) => ({
      scope: scopeText,
      principal: propertyText(item.value, "principalId") ?? "",
      role: roleId(propertyText(item.value, "roleDefinitionId")),
      conditional: item.conditional,
    }));
  });
}

const identity = "reference('identity').outputs.principalId.value";
const TENANT_A = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const TENANT_B = "5e2c7a9d-3b1f-4c8e-a6d4-9f0b2e7c1a35";
const TENANT_C = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
const TENANT_D = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";
const lob = "parameters('lobSenderPrincipalId')";
const queueScope = (param: string): string =>
  `resourceId('Microsoft.ServiceBus/namespaces/queues', parameters('name'), parameters('${param}'))`;

const skipped = located.kind === "missing" ? ` (skipped: ${located.reason})` : "";
describeCompiled(`main.bicep compiled by the Bicep CLI (pinned ${BICEP_VERSION})${skipped}`, () => {
  it("compiles main.bicep and main.bicepparam with no error and no linter warning", () => {
    const problems = parseDiagnostics(buildOutput).filter((d) => d.level !== "Info");
    expect(
      problems.map((d) => `${path.basename(d.file)}(${d.line}) ${d.code}: ${d.message}`),
    ).toEqual([]);
  });

  it("deploys every resource family, both queues, the alerts and the workbook", () => {
    const types = new Set(allResources(root).map((r) => r.resource.type));
    expect([...types].sort()).toEqual(
      expect.arrayContaining([
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "Microsoft.OperationalInsights/workspaces",
        "Microsoft.Insights/components",
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Storage/storageAccounts/tableServices/tables",
        "Microsoft.ServiceBus/namespaces",
        "Microsoft.ServiceBus/namespaces/queues",
        "Microsoft.Web/serverfarms",
        "Microsoft.Web/sites",
        "Microsoft.Web/sites/config",
        "Microsoft.BotService/botServices",
        "Microsoft.BotService/botServices/channels",
        "Microsoft.Authorization/roleAssignments",
        "Microsoft.Insights/metricAlerts",
        "Microsoft.Insights/scheduledQueryRules",
        "Microsoft.Insights/actionGroups",
        "Microsoft.Insights/workbooks",
      ]),
    );
    const queues = ofType("Microsoft.ServiceBus/namespaces/queues").map((q) => ({
      name: q.resource.name,
      requiresSession: q.resource.properties?.requiresSession,
      requiresDuplicateDetection: q.resource.properties?.requiresDuplicateDetection,
    }));
    expect(queues).toEqual([
      {
        name: "[format('{0}/{1}', parameters('name'), parameters('notificationsQueueName'))]",
        requiresSession: false,
        requiresDuplicateDetection: true,
      },
      {
        name: "[format('{0}/{1}', parameters('name'), parameters('workQueueName'))]",
        requiresSession: true,
        requiresDuplicateDetection: true,
      },
    ]);
  });

  it("sets on the Function App every setting the code reads in Azure, and nothing unknown", () => {
    const [settings] = ofType("Microsoft.Web/sites/config");
    const keys = objectKeys(settings!.resource.properties, settings!.scope);
    const always = keys.filter((k) => !k.conditional).map((k) => k.value);
    const expected = SETTING_NAMES.filter(
      (s) =>
        !(PLATFORM_SETTINGS as readonly string[]).includes(s) &&
        !(LOCAL_ONLY_SETTINGS as readonly string[]).includes(s) &&
        ![
          "TableStorageConnection",
          "ServiceBusConnection",
          "MicrosoftAppPassword",
          "EventWebhookSecret",
        ].includes(s),
    );
    expect(expected.filter((s) => !always.includes(s))).toEqual([]);
    expect(keys.filter((k) => k.conditional).map((k) => k.value)).toEqual([
      "MicrosoftAppPassword",
      "EventWebhookSecret",
    ]);
    const known = new Set<string>([...SETTING_NAMES, ...HOST_SETTINGS]);
    const identityBased = /^(AzureWebJobsStorage|ServiceBusConnection|TableStorageConnection)__/;
    expect(always.filter((k) => !known.has(k) && !identityBased.test(k))).toEqual([]);
    expect(always.filter((k) => FLEX_FORBIDDEN_SETTINGS.includes(k))).toEqual([]);
  });

  it("sets no siteConfig property the Flex Consumption plan rejects", () => {
    const [site] = ofType("Microsoft.Web/sites");
    const siteConfig = (site!.resource.properties?.siteConfig ?? {}) as Record<string, unknown>;
    expect(Object.keys(siteConfig).filter((k) => FLEX_REJECTED_SITE_CONFIG.includes(k))).toEqual(
      [],
    );
    expect(site!.resource.properties?.functionAppConfig).toBeDefined();
  });

  it("accepts only maximumInstanceCount values of 40 and more, at the top and in the module", () => {
    const module = moduleNamed("functionApp");
    for (const t of [template, module.scope.template]) {
      const param = t.parameters?.maximumInstanceCount;
      expect(param?.minValue).toBeGreaterThanOrEqual(40);
      expect(param?.maxValue).toBe(1000);
      expect(Number(param?.defaultValue)).toBeGreaterThanOrEqual(40);
    }
  });

  it("grants Herald's identity Receiver and Owner on the intake queue and the LOB app only Sender", () => {
    const intake = grants().filter((g) => g.scope === queueScope("notificationsQueueName"));
    expect(
      intake
        .filter((g) => g.principal === identity)
        .map((g) => g.role)
        .sort(),
    ).toEqual([BUILT_IN_ROLES.serviceBusDataReceiver, BUILT_IN_ROLES.serviceBusDataOwner].sort());
    expect(intake.filter((g) => g.principal === lob)).toEqual([
      expect.objectContaining({ role: BUILT_IN_ROLES.serviceBusDataSender, conditional: true }),
    ]);
  });

  it("grants Herald's identity Receiver, Owner and Sender on the work queue, and no one else anything", () => {
    const work = grants().filter((g) => g.scope === queueScope("workQueueName"));
    expect(work.every((g) => g.principal === identity && !g.conditional)).toBe(true);
    expect(work.map((g) => g.role).sort()).toEqual(
      [
        BUILT_IN_ROLES.serviceBusDataReceiver,
        BUILT_IN_ROLES.serviceBusDataOwner,
        BUILT_IN_ROLES.serviceBusDataSender,
      ].sort(),
    );
  });

  it("grants every role on one resource, never on the namespace, the resource group or the subscription", () => {
    const all = grants();
    expect(all.length).toBeGreaterThan(0);
    expect(all.filter((g) => !/^resourceId\('/.test(g.scope)).map((g) => g.scope)).toEqual([]);
    expect(all.filter((g) => g.scope.includes("'Microsoft.ServiceBus/namespaces',"))).toEqual([]);
    const lobGrants = all.filter((g) => g.principal === lob);
    expect(lobGrants).toHaveLength(1);
  });

  it("publishes events to a topic with duplicate detection, Herald's identity only its Sender", () => {
    const [topic] = ofType("Microsoft.ServiceBus/namespaces/topics");
    expect(topic!.resource.properties?.requiresDuplicateDetection).toBe(true);
    const onTopic = grants().filter((g) =>
      g.scope.startsWith("resourceId('Microsoft.ServiceBus/namespaces/topics',"),
    );
    expect(onTopic).toEqual([
      expect.objectContaining({
        principal: identity,
        role: BUILT_IN_ROLES.serviceBusDataSender,
        conditional: false,
      }),
    ]);
  });

  it("gives each event subscriber Data Receiver on its own subscription only", () => {
    const [roles] = ofType("Microsoft.Authorization/roleAssignments").filter(
      (r) => r.resource.copy?.name === "eventSubscriberRoles",
    );
    expect(roles!.resource.scope).toBe(
      "[resourceId('Microsoft.ServiceBus/namespaces/topics/subscriptions', parameters('name'), parameters('eventTopicName'), parameters('eventSubscribers')[copyIndex()].name)]",
    );
    expect(roles!.resource.properties?.principalId).toBe(
      "[parameters('eventSubscribers')[copyIndex()].principalId]",
    );
    const receiver = roles!.scope.template.variables?.serviceBusDataReceiver;
    expect(receiver).toBe(BUILT_IN_ROLES.serviceBusDataReceiver);
    expect(roles!.resource.dependsOn).toContain(
      "[format('eventSubscriptionFilters[{0}]', copyIndex())]",
    );
  });

  it("filters each subscription to its tenants: the compiled filter, run by the local topic, shows an app its tenants' events and no other's", () => {
    const [rules] = ofType("Microsoft.ServiceBus/namespaces/topics/subscriptions/rules");
    const sql = (rules!.resource.properties?.sqlFilter as { sqlExpression: string }).sqlExpression;
    const subscribers = [
      { name: "erp", tenantIds: [TENANT_A.toUpperCase()], principalId: "p1" },
      { name: "crm", tenantIds: [TENANT_B, TENANT_C], principalId: "p2" },
    ];
    const filters = subscribers.map((_, copyIndex) =>
      String(
        evaluateArm(expressionOf(sql)!, {
          parameters: { eventSubscribers: subscribers },
          copyIndex,
        }),
      ),
    );
    expect(filters[0]).toBe(`tenantId IN ('${TENANT_A}')`);

    const directory = mkdtempSync(path.join(tmpdir(), "herald-filter-"));
    const topic = new LocalTopic({ directory });
    try {
      subscribers.forEach((s, i) => topic.subscribe(s.name, filters[i]));
      const tenants = [TENANT_A, TENANT_B, TENANT_C, TENANT_D];
      topic.publish(
        tenants.map((tenantId, n) => ({
          body: { id: `e${n}` },
          messageId: `e${n}`,
          applicationProperties: { tenantId, type: "herald.delivery.sent", requestId: "r" },
        })),
      );
      const seen = (name: string) =>
        topic
          .subscription(name)
          .receive(10)
          .map((m) => m.applicationProperties.tenantId);
      expect(seen("erp")).toEqual([TENANT_A]);
      expect(seen("crm")).toEqual([TENANT_B, TENANT_C]);
    } finally {
      topic.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it("keeps a tenant id with a quote in it a literal of the compiled filter, so a mistyped or crafted parameter never shows an app other tenants' events", () => {
    const [rules] = ofType("Microsoft.ServiceBus/namespaces/topics/subscriptions/rules");
    const sql = (rules!.resource.properties?.sqlFilter as { sqlExpression: string }).sqlExpression;
    const subscribers = [
      {
        name: "erp",
        tenantIds: [`${TENANT_A}') OR tenantId IS NOT NULL OR ('x`],
        principalId: "p1",
      },
    ];
    const filter = String(
      evaluateArm(expressionOf(sql)!, {
        parameters: { eventSubscribers: subscribers },
        copyIndex: 0,
      }),
    );

    const directory = mkdtempSync(path.join(tmpdir(), "herald-filter-"));
    const topic = new LocalTopic({ directory });
    try {
      topic.subscribe("erp", filter);
      topic.publish(
        [TENANT_A, TENANT_B].map((tenantId, n) => ({
          body: { id: `e${n}` },
          messageId: `e${n}`,
          applicationProperties: { tenantId, type: "herald.delivery.sent", requestId: "r" },
        })),
      );
      expect(topic.subscription("erp").receive(10)).toEqual([]);
    } finally {
      topic.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it("alerts on dead letters of each queue, from the namespace's DeadletteredMessages metric", () => {
    const [deadLetters] = ofType("Microsoft.Insights/metricAlerts");
    expect(deadLetters!.resource.copy?.count).toBe("[length(parameters('queueNames'))]");
    const criteria = JSON.stringify(deadLetters!.resource.properties?.criteria);
    expect(criteria).toContain('"metricName":"DeadletteredMessages"');
    expect(criteria).toContain('"name":"EntityName"');
    expect(criteria).toContain('"operator":"GreaterThan","threshold":0');
    const alerts = moduleNamed("alerts");
    const queues = arrayItems(alerts.resource.properties?.parameters?.queueNames?.value, root);
    expect(queues.map((q) => q.value)).toEqual([
      "[reference('serviceBus').outputs.notificationsQueueName.value]",
      "[reference('serviceBus').outputs.workQueueName.value]",
    ]);
  });

  it("alerts on failure share, 429 share, a webhook turned off and function errors from the lines Herald logs", () => {
    const alerts = moduleNamed("alerts");
    const logAlerts = alerts.scope.template.variables?.logAlerts as {
      key: string;
      query: string;
      measure: string;
    }[];
    expect(logAlerts.map((a) => a.key)).toEqual([
      "failed-share",
      "throttled-share",
      "webhook-disabled",
      "function-errors",
    ]);
    expect(String(alerts.scope.template.variables?.webhookDisabledQuery)).toContain(
      '"events.webhookDisabled"',
    );
    const heraldMetrics = String(alerts.scope.template.variables?.heraldMetrics);
    // The lines shared/notifications/metrics.ts writes: `metric <name> {"metric":…,"value":…}`.
    expect(heraldMetrics).toContain('where message startswith "metric "');
    const failed = String(alerts.scope.template.variables?.failedShareQuery);
    const throttled = String(alerts.scope.template.variables?.throttledShareQuery);
    for (const name of [
      "notifications.sent",
      "notifications.failed",
      "notifications.unreachable",
    ]) {
      expect(failed).toContain(`"${name}"`);
    }
    expect(throttled).toContain('"notifications.throttled"');
    expect(throttled).toContain('"notifications.retried"');
    const [rule] = ofType("Microsoft.Insights/scheduledQueryRules");
    expect(rule!.resource.copy?.count).toBe("[length(variables('logAlerts'))]");
    expect(rule!.resource.kind).toBe("LogAlert");
  });

  it("creates the e-mail action group only when an address is given", () => {
    const [group] = ofType("Microsoft.Insights/actionGroups");
    expect(group!.resource.condition).toBe("[not(empty(parameters('alertEmailAddress')))]");
    expect(template.parameters?.alertEmailAddress?.defaultValue).toBe("");
  });

  it("adds a workbook with deliveries per second, states, throttling and queue depth per queue", () => {
    const alerts = moduleNamed("alerts");
    const [workbook] = ofType("Microsoft.Insights/workbooks");
    expect(workbook!.resource.kind).toBe("shared");
    const titles = [
      ...(alerts.scope.template.variables?.workbookQueries as { title: string }[]),
      ...(alerts.scope.template.variables?.queueMetrics as { title: string }[]),
    ].map((q) => q.title);
    expect(titles).toEqual(
      expect.arrayContaining([
        "Deliveries per second (sent)",
        "Recipient states",
        "Throttling: 429s, retries and deferrals per minute",
        "Queue depth per queue (active messages)",
      ]),
    );
    expect(JSON.stringify(alerts.scope.template.variables?.workbookContent)).toContain(
      "EntityName",
    );
  });

  it("outputs the work queue name and nothing declared secure", () => {
    expect(template.outputs?.workQueueName).toBeDefined();
    const secure = Object.entries(template.outputs ?? {}).filter(([, o]) => /secure/i.test(o.type));
    expect(secure).toEqual([]);
  });
});
