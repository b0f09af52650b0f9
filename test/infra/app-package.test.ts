import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { LAZY_SDKS as BENCH_LAZY_SDKS } from "../../bench/cold-start";
import { type AppPackage, buildAppPackage, LAZY_SDKS, REPO_ROOT } from "../../infra/package-app";
import { readZip } from "./support/archives";

/**
 * `npm run package:app` builds the zip azd and `az functionapp deployment source config-zip`
 * deploy. Built once here (about 5 s of esbuild), then read back and loaded in a fresh Node
 * process the way the Functions worker loads it.
 */

const MAX_BYTES = 5 * 1024 * 1024;

const CORE_STUB = `"use strict";
const registered = [];
module.exports = {
  registered,
  setProgrammingModel() {},
  getProgrammingModel() { return undefined; },
  registerFunction(metadata) { registered.push(metadata.name); return { dispose() {} }; },
  registerHook() { return { dispose() {} }; },
  log() {},
};
`;

/** Loads the app, then each lazily loaded SDK from the app's own node_modules, and uses them. */
const PROBE = `"use strict";
const dir = process.argv[2];
require(dir + "/index.js");
const core = require("@azure/functions-core");
const load = (name) => require(require.resolve(name, { paths: [dir] }));
const bb = load("botbuilder");
const adapter = new bb.CloudAdapter(new bb.ConfigurationBotFrameworkAuthentication({}));
const tables = load("@azure/data-tables");
new tables.TableClient("http://127.0.0.1:1/devstoreaccount1", "t", new tables.AzureNamedKeyCredential("a", "a2V5"), { allowInsecureConnection: true });
const identity = load("@azure/identity");
const sb = load("@azure/service-bus");
new sb.ServiceBusClient("x.servicebus.windows.net", new identity.DefaultAzureCredential());
const connector = load("botframework-connector");
console.log(JSON.stringify({
  registered: core.registered,
  resolved: ${JSON.stringify(LAZY_SDKS)}.map((name) => require.resolve(name, { paths: [dir] })),
  adapter: typeof adapter.process,
  connector: typeof connector.ConnectorClient,
}));
`;

let workDir: string;
let built: AppPackage;
let entries: Map<string, Buffer>;

beforeAll(async () => {
  workDir = mkdtempSync(path.join(tmpdir(), "herald-app-"));
  built = await buildAppPackage({
    dir: path.join(workDir, "staged"),
    zipFile: path.join(workDir, "herald-app.zip"),
  });
  entries = readZip(readFileSync(built.zipFile));
}, 120_000);

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

function devDependencies(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
    devDependencies: Record<string, string>;
  };
  return Object.keys(pkg.devDependencies);
}

describe("the app package (npm run package:app)", () => {
  it("is under 5 MB", () => {
    expect(built.zipBytes).toBeLessThan(MAX_BYTES);
  });

  it("holds host.json, package.json with main, the bundled functions and the lazily loaded SDKs, nothing else", () => {
    expect([...entries.keys()].sort()).toEqual(
      [
        "host.json",
        "package.json",
        "index.js",
        ...LAZY_SDKS.flatMap((sdk) => [
          `node_modules/${sdk}/index.js`,
          `node_modules/${sdk}/package.json`,
        ]),
      ].sort(),
    );
    const manifest = JSON.parse(entries.get("package.json")!.toString("utf8")) as {
      main: string;
      dependencies?: unknown;
      devDependencies?: unknown;
    };
    expect(manifest.main).toBe("index.js");
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.devDependencies).toBeUndefined();
    expect(entries.get("host.json")!.equals(readFileSync(path.join(REPO_ROOT, "host.json")))).toBe(
      true,
    );
  });

  it("contains no dev dependency, neither as a folder nor bundled in", () => {
    const packages = [...entries.keys()]
      .filter((f) => f.startsWith("node_modules/"))
      .map((f) =>
        f
          .split("/")
          .slice(1, f.startsWith("node_modules/@") ? 3 : 2)
          .join("/"),
      );
    const dev = new Set(devDependencies());
    expect(packages.filter((p) => dev.has(p))).toEqual([]);
    // A minified bundle keeps no module paths: look for strings only the dev tools carry.
    const app = entries.get("index.js")!.toString("utf8");
    for (const marker of ["azurite", "ts-jest", "typescript/lib", "m365agentsplayground"]) {
      expect([marker, app.includes(marker)]).toEqual([marker, false]);
    }
  });

  it("leaves the lazily loaded SDKs out of index.js, as the cold-start benchmark measures it", () => {
    expect([...LAZY_SDKS]).toEqual(BENCH_LAZY_SDKS);
    const app = entries.get("index.js")!.toString("utf8");
    for (const sdk of LAZY_SDKS) expect(app).toContain(`require("${sdk}")`);
    expect(app).toContain('require("@azure/functions-core")');
  });

  it("registers every function and loads each SDK from its own node_modules in a fresh process", () => {
    const unzipped = path.join(workDir, "unzipped");
    for (const [name, content] of entries) {
      mkdirSync(path.dirname(path.join(unzipped, name)), { recursive: true });
      writeFileSync(path.join(unzipped, name), content);
    }
    const stub = path.join(workDir, "core-stub");
    mkdirSync(path.join(stub, "@azure", "functions-core"), { recursive: true });
    writeFileSync(path.join(stub, "@azure", "functions-core", "index.js"), CORE_STUB);
    writeFileSync(path.join(workDir, "probe.js"), PROBE);
    const out = execFileSync(process.execPath, [path.join(workDir, "probe.js"), unzipped], {
      // Outside the repository: nothing can resolve from the repo's node_modules.
      cwd: workDir,
      env: { PATH: process.env.PATH, NODE_PATH: stub },
      encoding: "utf8",
    });
    const result = JSON.parse(out.trim().split("\n").at(-1)!) as {
      registered: string[];
      resolved: string[];
      adapter: string;
      connector: string;
    };
    const functions = readdirSync(path.join(REPO_ROOT, "functions"))
      .filter((f) => f.endsWith(".ts"))
      .map((f) => f.replace(/\.ts$/, ""));
    expect(result.registered.length).toBeGreaterThanOrEqual(functions.length);
    expect(result.registered).toEqual(expect.arrayContaining(["messages", "notifications"]));
    for (const file of result.resolved) expect(file.startsWith(unzipped)).toBe(true);
    expect([result.adapter, result.connector]).toEqual(["function", "function"]);
  });
});
