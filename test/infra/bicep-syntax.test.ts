import { readdirSync } from "node:fs";
import path from "node:path";

import { BicepDocument, INFRA_DIR, type SyntaxProblem } from "./support/bicep";
import { BicepProject } from "./support/bicep-project";

function bicepFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return bicepFiles(full);
    return /\.bicep(param)?$/.test(entry.name) ? [full] : [];
  });
}

function describeProblems(problems: SyntaxProblem[]): string {
  return problems
    .map((p) => `${p.file}:${p.line}:${p.column} ${p.kind}\n    ${p.sourceLine.trim()}`)
    .join("\n");
}

const files = bicepFiles(INFRA_DIR);

describe("Bicep syntax (tree-sitter-bicep grammar)", () => {
  it("finds the templates: main.bicep, main.bicepparam and one module per resource family", () => {
    const names = files.map((f) => path.relative(INFRA_DIR, f)).sort();
    expect(names).toEqual(
      expect.arrayContaining([
        "main.bicep",
        "main.bicepparam",
        "modules/alerts.bicep",
        "modules/bot.bicep",
        "modules/function-app.bicep",
        "modules/identity.bicep",
        "modules/monitoring.bicep",
        "modules/service-bus.bicep",
        "modules/storage.bicep",
      ]),
    );
  });

  it.each(files.map((f) => [path.relative(INFRA_DIR, f), f]))(
    "parses %s without ERROR or MISSING nodes",
    async (_name, file) => {
      const doc = await BicepDocument.load(file);
      expect(describeProblems(doc.syntaxProblems())).toBe("");
    },
  );

  describe("the check itself", () => {
    it("reports the line of a deliberately broken template", async () => {
      const broken = [
        "param name string",
        "resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {",
        "  name: name",
        "  properties: {",
        "    minimumTlsVersion: 'TLS1_2'",
        "  ", // missing closing brace of properties
        "}",
        "output id string = sa.id +",
      ].join("\n");
      const doc = await BicepDocument.load(path.join(INFRA_DIR, "broken.bicep"), broken);
      const problems = doc.syntaxProblems();
      expect(problems.length).toBeGreaterThan(0);
      expect(describeProblems(problems)).toMatch(/broken\.bicep:\d+:\d+ (ERROR|MISSING)/);
    });

    it("reports a .bicepparam value that is not an expression", async () => {
      const doc = await BicepDocument.load(
        path.join(INFRA_DIR, "broken.bicepparam"),
        "using 'main.bicep'\n\nparam namePrefix = \nparam location = 'westeurope'\n",
      );
      // The value is missing on line 3; the parser notices at the next token, on line 3 or 4.
      const lines = doc.syntaxProblems().map((p) => p.line);
      expect(lines.length).toBeGreaterThan(0);
      expect(lines[0]).toBeGreaterThanOrEqual(3);
      expect(lines[0]).toBeLessThanOrEqual(4);
    });

    it("accepts the .bicepparam form `param name = value`", async () => {
      const doc = await BicepDocument.load(
        path.join(INFRA_DIR, "ok.bicepparam"),
        "using 'main.bicep'\nparam tags = {\n  a: 'b'\n}\nparam n = readEnvironmentVariable('X', '1')\n",
      );
      expect(doc.syntaxProblems()).toEqual([]);
    });
  });
});

describe("Bicep semantics the compiler and linter would check", () => {
  let project: BicepProject;
  beforeAll(async () => {
    project = await BicepProject.load();
  });

  it("has no undeclared symbols, unused params/vars/imports, bad module wiring or missing descriptions", async () => {
    const findings = (await project.findings()).map((f) => `${f.where}: ${f.message}`);
    expect(findings).toEqual([]);
  });

  it("catches wrong module wiring, typos in typed objects and undeclared symbols", async () => {
    const main = await BicepDocument.load(
      path.join(INFRA_DIR, "main-broken.bicep"),
      [
        "@description('Optional. Where.')",
        "param location string = resourceGroup().location",
        "module identity 'modules/identity.bicep' = {",
        "  name: 'identity'",
        "  params: {",
        "    location: location",
        "    colour: 'blue'",
        "  }",
        "}",
        "module monitoring 'modules/monitoring.bicep' = {",
        "  name: 'monitoring'",
        "  params: {",
        "    workspaceName: 'log'",
        "    applicationInsightsName: 'appi'",
        "    location: location",
        "    roleAssignments: [",
        "      { principalId: identity.outputs.principalId, roleDefinitionID: 'x' }",
        "    ]",
        "  }",
        "}",
        "@description('Client id.')",
        "output clientId string = identity.outputs.clientID",
        "output leak string = undeclaredThing",
      ].join("\n"),
    );
    const broken = await BicepProject.fromDocuments(main, (file) => BicepDocument.load(file));
    const messages = (await broken.findings()).map((f) => f.message);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringContaining("passes 'colour'"),
        expect.stringContaining("does not pass required parameter 'name'"),
        expect.stringContaining("identity.outputs.clientID"),
        expect.stringContaining("'undeclaredThing' is not declared"),
        expect.stringContaining("output 'leak' has no @description"),
        expect.stringContaining("'roleDefinitionID' is not a property of roleAssignmentType"),
        expect.stringContaining("roleAssignmentType needs 'roleDefinitionId'"),
      ]),
    );
  });
});
