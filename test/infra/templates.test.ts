import "../../functions/messages";

import { readFileSync } from "node:fs";
import path from "node:path";

import type { Node } from "web-tree-sitter";

import { registeredFunctions } from "../../shared/registry";
import { BicepDocument, INFRA_DIR, property, REPO_ROOT, stringLiteral } from "./support/bicep";
import { BicepProject } from "./support/bicep-project";
import { at, resourceOfType, resourcesOfType } from "./support/infra-facts";

/** What the issue asks of each resource family, read from the parse trees of infra/. */

let project: BicepProject;
beforeAll(async () => {
  project = await BicepProject.load();
});

function text(node: Node | undefined): string | undefined {
  return node?.text;
}

function allowedValues(doc: BicepDocument, param: string): string[] {
  const list = doc.get("param", param).decorators.get("allowed")?.[0];
  return list?.namedChildren.map((n) => stringLiteral(n) ?? n.text) ?? [];
}

describe("main.bicep", () => {
  it("deploys to a resource group", () => {
    const scope = project.main.root.namedChildren.find((n) => n.type === "target_scope_assignment");
    expect(scope?.namedChildren[0] && stringLiteral(scope.namedChildren[0])).toBe("resourceGroup");
  });

  it("composes one module per resource family", () => {
    const modules = project.main.all("module").map((m) => project.main.targetOf(m));
    expect(modules.sort()).toEqual([
      "modules/alerts.bicep",
      "modules/bot.bicep",
      "modules/function-app.bicep",
      "modules/identity.bicep",
      "modules/monitoring.bicep",
      "modules/service-bus.bicep",
      "modules/storage.bicep",
    ]);
  });

  it("derives every resource name from the prefix and a uniqueString token", () => {
    const token = project.main.valueOf(project.main.get("var", "resourceToken"));
    expect(token?.text).toMatch(/uniqueString\(/);
    for (const module of project.main.all("module")) {
      const params = project.moduleParams(module.name).node;
      for (const key of ["name", "planName", "workspaceName", "applicationInsightsName"]) {
        const value = property(params, key);
        if (value === undefined) continue;
        expect([module.name, key, value.text]).toEqual([
          module.name,
          key,
          expect.stringMatching(/(namePrefix|cleanPrefix)\}?.*resourceToken/),
        ]);
      }
    }
  });

  it("tags every top-level resource", () => {
    for (const doc of project.documents) {
      for (const resource of doc.all("resource")) {
        const body = doc.bodyOf(resource)!;
        if (property(body, "location") === undefined) continue; // child or extension resources
        expect([doc.where(resource.node), text(property(body, "tags"))]).toEqual([
          doc.where(resource.node),
          expect.stringMatching(/tags/),
        ]);
      }
    }
  });

  it("outputs what operators and the Teams package need, and no secret", () => {
    const outputs = project.main.all("output").map((o) => o.name);
    expect(outputs).toEqual(
      expect.arrayContaining([
        "functionAppName",
        "functionAppUrl",
        "functionAppHostName",
        "messagingEndpoint",
        "notificationsQueueName",
        "workQueueName",
        "serviceBusFullyQualifiedNamespace",
        "botAppId",
        "botResourceName",
        "teamsAppId",
      ]),
    );
    for (const doc of project.documents) {
      for (const output of doc.all("output")) {
        const value = doc.valueOf(output)?.text ?? "";
        expect([doc.where(output.node), value]).not.toEqual([
          doc.where(output.node),
          expect.stringMatching(/list\w*\(|[Pp]assword|[Ss]ecret|InstrumentationKey/),
        ]);
      }
    }
    const connection = project.main
      .all("output")
      .filter((o) => /connectionstring|key/i.test(o.name));
    expect(connection).toEqual([]);
  });
});

describe("Function App", () => {
  it("runs on the Flex Consumption plan", () => {
    const plan = resourceOfType(project, "function-app.bicep", "Microsoft.Web/serverfarms");
    expect(text(at(plan.body, "sku.name"))).toBe("'FC1'");
    expect(text(at(plan.body, "sku.tier"))).toBe("'FlexConsumption'");
    expect(text(at(plan.body, "properties.reserved"))).toBe("true");
  });

  it("is a Linux Node.js 22 app with a user-assigned identity, HTTPS only and TLS 1.2", () => {
    const site = resourceOfType(project, "function-app.bicep", "Microsoft.Web/sites");
    expect(text(property(site.body, "kind"))).toBe("'functionapp,linux'");
    expect(text(at(site.body, "identity.type"))).toBe("'UserAssigned'");
    expect(text(at(site.body, "properties.httpsOnly"))).toBe("true");
    expect(text(at(site.body, "properties.siteConfig.minTlsVersion"))).toBe("'1.2'");
    expect(text(at(site.body, "properties.functionAppConfig.runtime.name"))).toBe("'node'");
    expect(text(at(site.body, "properties.functionAppConfig.runtime.version"))).toBe("nodeVersion");
    for (const version of allowedValues(site.doc, "nodeVersion")) {
      expect(Number(version)).toBeGreaterThanOrEqual(22);
    }
    expect(allowedValues(project.main, "nodeVersion")).toEqual(
      allowedValues(site.doc, "nodeVersion"),
    );
    expect(text(property(site.body, "tags"))).toContain("'azd-service-name': 'api'");
  });

  it("sets no site property Flex Consumption rejects with BadRequest", () => {
    // Flex runs on functionAppConfig; these legacy siteConfig properties are refused there.
    const rejected = [
      "ftpsState",
      "alwaysOn",
      "linuxFxVersion",
      "use32BitWorkerProcess",
      "javaVersion",
      "nodeVersion",
      "netFrameworkVersion",
      "powerShellVersion",
      "pythonVersion",
      "functionAppScaleLimit",
      "minimumElasticInstanceCount",
      "preWarmedInstanceCount",
      "numberOfWorkers",
    ];
    const site = resourceOfType(project, "function-app.bicep", "Microsoft.Web/sites");
    const siteConfig = at(site.body, "properties.siteConfig");
    const set = rejected.filter((key) => siteConfig !== undefined && at(siteConfig, key));
    expect(set).toEqual([]);
  });

  it("allows only maximumInstanceCount values Flex Consumption accepts (40 to 1000)", () => {
    const site = resourceOfType(project, "function-app.bicep", "Microsoft.Web/sites");
    for (const doc of [site.doc, project.main]) {
      const param = doc.get("param", "maximumInstanceCount");
      const min = Number(param.decorators.get("minValue")?.[0]?.text);
      const max = Number(param.decorators.get("maxValue")?.[0]?.text);
      const fallback = Number(doc.valueOf(param)?.text);
      expect([doc.file, min, max]).toEqual([doc.file, 40, 1000]);
      expect(fallback).toBeGreaterThanOrEqual(40);
    }
  });

  it("deploys from the storage container with its identity and scales within parameters", () => {
    const site = resourceOfType(project, "function-app.bicep", "Microsoft.Web/sites");
    const config = at(site.body, "properties.functionAppConfig")!;
    expect(text(at(config, "deployment.storage.type"))).toBe("'blobContainer'");
    expect(text(at(config, "deployment.storage.value"))).toBe("deploymentContainerUrl");
    expect(text(at(config, "deployment.storage.authentication.type"))).toBe(
      "'UserAssignedIdentity'",
    );
    expect(text(at(config, "scaleAndConcurrency.maximumInstanceCount"))).toBe(
      "maximumInstanceCount",
    );
    expect(text(at(config, "scaleAndConcurrency.instanceMemoryMB"))).toBe("instanceMemoryMB");
    const params = project.moduleParams(project.symbolFor("function-app.bicep")).node;
    expect(text(property(params, "maximumInstanceCount"))).toBe("maximumInstanceCount");
    expect(text(property(params, "instanceMemoryMB"))).toBe("instanceMemoryMB");
    expect(text(property(params, "deploymentContainerUrl"))).toBe(
      "storage.outputs.deploymentContainerUrl",
    );
  });

  it("turns off FTP and SCM basic-auth publishing credentials", () => {
    const policies = resourcesOfType(
      project,
      "function-app.bicep",
      "Microsoft.Web/sites/basicPublishingCredentialsPolicies",
    );
    const allowed = policies.map((p) => [
      stringLiteral(property(p.body, "name")!),
      text(at(p.body, "properties.allow")),
    ]);
    expect(allowed.sort()).toEqual([
      ["ftp", "false"],
      ["scm", "false"],
    ]);
  });
});

describe("Storage", () => {
  it("disables shared keys and public blob access and requires TLS 1.2", () => {
    const account = resourceOfType(project, "storage.bicep", "Microsoft.Storage/storageAccounts");
    expect(text(at(account.body, "properties.allowSharedKeyAccess"))).toBe("false");
    expect(text(at(account.body, "properties.allowBlobPublicAccess"))).toBe("false");
    expect(text(at(account.body, "properties.minimumTlsVersion"))).toBe("'TLS1_2'");
    expect(text(at(account.body, "properties.supportsHttpsTrafficOnly"))).toBe("true");
  });

  it("has a private container for the deployment package", () => {
    const container = resourceOfType(
      project,
      "storage.bicep",
      "Microsoft.Storage/storageAccounts/blobServices/containers",
    );
    expect(text(at(container.body, "properties.publicAccess"))).toBe("'None'");
  });
});

describe("Service Bus", () => {
  it("is Standard or Premium with SAS (local auth) disabled", () => {
    const namespace = resourceOfType(
      project,
      "service-bus.bicep",
      "Microsoft.ServiceBus/namespaces",
    );
    expect(text(at(namespace.body, "properties.disableLocalAuth"))).toBe("true");
    expect(allowedValues(namespace.doc, "skuName").sort()).toEqual(["Premium", "Standard"]);
    expect(allowedValues(project.main, "serviceBusSkuName").sort()).toEqual([
      "Premium",
      "Standard",
    ]);
  });

  it.each([
    ["notificationsQueue", "false"],
    ["workQueue", "true"],
  ])(
    "%s deduplicates, dead-letters expired messages, has sessions %s and takes its limits from parameters",
    (symbol, sessions) => {
      const queue = resourcesOfType(
        project,
        "service-bus.bicep",
        "Microsoft.ServiceBus/namespaces/queues",
      ).find((q) => q.declaration.name === symbol)!;
      expect(text(at(queue.body, "properties.requiresSession"))).toBe(sessions);
      expect(text(at(queue.body, "properties.requiresDuplicateDetection"))).toBe("true");
      expect(text(at(queue.body, "properties.deadLetteringOnMessageExpiration"))).toBe("true");
      expect(text(at(queue.body, "properties.duplicateDetectionHistoryTimeWindow"))).toBe(
        "duplicateDetectionHistoryTimeWindow",
      );
      expect(text(at(queue.body, "properties.maxDeliveryCount"))).toBe("maxDeliveryCount");
      expect(text(at(queue.body, "properties.lockDuration"))).toBe("lockDuration");
    },
  );

  it("passes one duplicate window, lock duration and attempt budget to both queues", () => {
    const params = project.moduleParams(project.symbolFor("service-bus.bicep")).node;
    expect(text(property(params, "duplicateDetectionHistoryTimeWindow"))).toBe(
      "duplicateDetectionWindow",
    );
    expect(text(property(params, "lockDuration"))).toBe("lockDuration");
    // One number for the broker's and Herald's attempt budget, so they cannot disagree.
    expect(text(property(params, "maxDeliveryCount"))).toBe("maxDeliveryCount");
  });
});

describe("Monitoring", () => {
  it("wires Application Insights to Log Analytics and refuses key-only telemetry", () => {
    const insights = resourceOfType(project, "monitoring.bicep", "Microsoft.Insights/components");
    expect(text(at(insights.body, "properties.WorkspaceResourceId"))).toBe("workspace.id");
    expect(text(at(insights.body, "properties.DisableLocalAuth"))).toBe("true");
    const params = project.moduleParams(project.symbolFor("function-app.bicep")).node;
    expect(text(property(params, "applicationInsightsConnectionString"))).toBe(
      "monitoring.outputs.connectionString",
    );
  });
});

describe("Azure Bot", () => {
  it("registers a single-tenant or managed-identity bot at the Function App's /api/messages", () => {
    const bot = resourceOfType(project, "bot.bicep", "Microsoft.BotService/botServices");
    expect(text(property(bot.body, "kind"))).toBe("'azurebot'");
    expect(allowedValues(bot.doc, "appType").sort()).toEqual(["SingleTenant", "UserAssignedMSI"]);
    const props = text(property(bot.body, "properties"))!;
    expect(props).toContain("msaAppType: appType");
    expect(props).toContain("msaAppTenantId: tenantId");
    expect(props).toContain("endpoint: messagingEndpoint");
    expect(props).toMatch(
      /appType == 'UserAssignedMSI' \? \{ msaAppMSIResourceId: msiResourceId \}/,
    );

    const params = project.moduleParams(project.symbolFor("bot.bicep")).node;
    expect(text(property(params, "messagingEndpoint"))).toBe(
      "'https://${functionApp.outputs.defaultHostName}/api/messages'",
    );
    expect(text(property(params, "appType"))).toBe("botAppType");
    expect(allowedValues(project.main, "botAppType")[0]).toBe("UserAssignedMSI");
    expect(stringLiteral(project.main.valueOf(project.main.get("param", "botAppType"))!)).toBe(
      "UserAssignedMSI",
    );

    // The route the code registers (under host.json's route prefix) is the one the bot calls.
    const host = JSON.parse(readFileSync(path.join(REPO_ROOT, "host.json"), "utf8")) as {
      extensions?: { http?: { routePrefix?: string } };
    };
    expect(host.extensions?.http?.routePrefix ?? "api").toBe("api");
    const messages = registeredFunctions().find((r) => r.name === "messages");
    expect(messages?.kind).toBe("http");
    expect(messages?.kind === "http" && messages.options.route).toBe("messages");
    expect(messages?.kind === "http" && messages.options.authLevel).toBe("anonymous");
  });

  it("leaves only the bot endpoint anonymous: every other HTTP function needs a key", () => {
    for (const file of ["notifications-api.ts", "notifications.ts"]) {
      jest.requireActual(path.join(REPO_ROOT, "functions", file));
    }
    const http = registeredFunctions().filter((r) => r.kind === "http");
    expect(http.map((r) => r.name)).toContain("messages");
    const open = http
      .filter((r) => r.kind === "http" && r.name !== "messages")
      .filter((r) => r.kind === "http" && (r.options.authLevel ?? "anonymous") === "anonymous");
    expect(open.map((r) => r.name)).toEqual([]);
    expect(http.length).toBeGreaterThan(1);
  });

  it("turns on the Microsoft Teams channel", () => {
    const channel = resourceOfType(
      project,
      "bot.bicep",
      "Microsoft.BotService/botServices/channels",
    );
    expect(stringLiteral(property(channel.body, "name")!)).toBe("MsTeamsChannel");
    expect(text(at(channel.body, "properties.channelName"))).toBe("'MsTeamsChannel'");
    expect(text(at(channel.body, "properties.properties.isEnabled"))).toBe("true");
    expect(text(property(channel.body, "parent"))).toBe("bot");
  });
});

describe("main.bicepparam", () => {
  it("sets only parameters main.bicep declares, with allowed values, and every required one", async () => {
    const params = await BicepDocument.load(path.join(INFRA_DIR, "main.bicepparam"));
    const using = params.root.namedChildren.find((n) => n.type === "using_statement");
    expect(using?.namedChildren[0] && stringLiteral(using.namedChildren[0])).toBe("main.bicep");
    const assigned = params.all("var");
    for (const p of assigned) {
      const declared = project.main.find("param", p.name);
      expect([p.name, declared !== undefined]).toEqual([p.name, true]);
      const allowed = allowedValues(project.main, p.name);
      const value = params.valueOf(p);
      const literal = value === undefined ? undefined : (stringLiteral(value) ?? value.text);
      if (allowed.length > 0 && literal !== undefined && value?.type !== "call_expression") {
        expect([p.name, allowed]).toEqual([p.name, expect.arrayContaining([literal])]);
      }
    }
    const names = new Set(assigned.map((p) => p.name));
    const required = project.main
      .all("param")
      .filter((p) => project.main.valueOf(p) === undefined)
      .map((p) => p.name);
    expect(required.filter((r) => !names.has(r))).toEqual([]);
  });
});

describe("bicepconfig.json", () => {
  it("turns the linter on with no rule switched off", () => {
    const config = JSON.parse(readFileSync(path.join(INFRA_DIR, "bicepconfig.json"), "utf8")) as {
      analyzers: { core: { enabled: boolean; rules: Record<string, { level: string }> } };
    };
    expect(config.analyzers.core.enabled).toBe(true);
    const rules = config.analyzers.core.rules;
    for (const rule of [
      "no-unused-params",
      "no-unused-vars",
      "no-hardcoded-env-urls",
      "outputs-should-not-contain-secrets",
      "secure-parameter-default",
      "use-secure-value-for-secure-inputs",
      "use-resource-symbol-reference",
    ]) {
      expect([rule, rules[rule]?.level]).toEqual([rule, "error"]);
    }
    expect(Object.entries(rules).filter(([, r]) => r.level === "off")).toEqual([]);
  });
});

describe("azure.yaml", () => {
  const yaml = readFileSync(path.join(REPO_ROOT, "azure.yaml"), "utf8");

  /** Top-level (project) hooks: the `hooks:` block at column 0, hook names at two spaces. */
  function projectHooks(): Map<string, string> {
    const block = /^hooks:\n((?: .*\n|\n)*)/m.exec(yaml)?.[1] ?? "";
    const hooks = new Map<string, string>();
    for (const match of block.matchAll(/^ {2}(\w+):\n((?: {3,}.*\n)*)/gm)) {
      hooks.set(match[1]!, match[2]!);
    }
    return hooks;
  }

  it("deploys service api as a TypeScript Function App from the Bicep in infra/", () => {
    expect(yaml).toMatch(/^infra:\n(\s+.*\n)*?\s+provider: bicep\n/m);
    expect(yaml).toMatch(/^\s+path: infra$/m);
    expect(yaml).toMatch(/^services:\n\s+api:\n(\s+.*\n)*?\s+host: function$/m);
    expect(yaml).toMatch(/^\s+language: (ts|js)$/m);
    expect(yaml).toMatch(/^\s+project: \.$/m);
  });

  it("deploys the lean package as built (dist build/herald-app, no remote build), built by a prepackage hook", () => {
    expect(yaml).toMatch(/^ {4}dist: build\/herald-app$/m);
    expect(yaml).toMatch(/^ {4}remoteBuild: false$/m);
    // Service hooks run after azd's restore (npm install) of the service.
    expect(yaml).toMatch(
      /^ {4}hooks:\n {6}prepackage:\n(?: {8,}.*\n)*? {10}run: npm run package:app$/m,
    );
    const scripts = (
      JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    expect(scripts["package:app"]).toContain("infra/package-app.ts");
  });

  it("runs no npm script in a project hook that can start before azd has installed node_modules", () => {
    const hooks = projectHooks();
    for (const early of ["preprovision", "postprovision", "prepackage", "prerestore", "preup"]) {
      expect([early, hooks.get(early)?.includes("npm run") ?? false]).toEqual([early, false]);
    }
    expect(hooks.get("postdeploy")).toContain("run: npm run package:teams");
  });

  it("keeps node_modules in .funcignore's reach, as azd requires with remoteBuild false", () => {
    const funcignore = readFileSync(path.join(REPO_ROOT, ".funcignore"), "utf8");
    const patterns = funcignore.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
    expect(patterns.filter((p) => /node_modules/.test(p))).toEqual([]);
  });
});
