import { execFile } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { promisify } from "node:util";

import { round } from "./stats";

const run = promisify(execFile);

export interface ColdStartVariant {
  readonly variant: "tsc build" | "esbuild bundle, all inlined" | "esbuild bundle, SDKs external";
  /** Median of `samples` fresh processes: process start to every function registered. */
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly samples: readonly number[];
  readonly registered: readonly string[];
  /** JavaScript files loaded at registration and their size on disk. */
  readonly modules: number;
  readonly loadedBytes: number;
  /** Heavy SDKs already loaded at registration (tsc build only: a bundle is one file). */
  readonly heavyLoaded: readonly string[] | undefined;
  readonly rssMb: number;
  /** What the host would load: the build's function files, or the bundle. */
  readonly entryBytes: number;
}

interface ProbeOutput {
  readyMs: number;
  registered: string[];
  modules: number;
  bytes: number;
  heavyLoaded: string[];
  rssMb: number;
}

/**
 * What the Functions worker provides as `@azure/functions-core`: `app.http(…)` and friends call
 * `registerFunction` on it when it exists. This stand-in records the names, so "registered"
 * means what it means in Azure, not the library's test-mode warning.
 */
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

function sizeOf(files: readonly string[]): number {
  return files.reduce((sum, f) => sum + statSync(f).size, 0);
}

/** `npm run build`'s compiler and config, into a scratch folder (dist/ is left alone). */
async function buildApp(root: string, outDir: string): Promise<string[]> {
  rmSync(outDir, { recursive: true, force: true });
  try {
    await run(
      process.execPath,
      // No declarations: .d.ts files under bench/ would be picked up by lint and type-check.
      [
        join(root, "node_modules/typescript/bin/tsc"),
        ...["-p", "tsconfig.build.json", "--outDir", outDir, "--declaration", "false"],
      ],
      { cwd: root },
    );
  } catch (error) {
    // tsc emits despite type errors (someone mid-edit); a missing output is caught below.
    const out = (error as { stdout?: string }).stdout ?? "";
    if (out !== "") process.stderr.write(`tsc reported errors (build still emitted):\n${out}\n`);
  }
  const folder = join(outDir, "functions");
  return readdirSync(folder)
    .filter((name) => name.endsWith(".js"))
    .sort()
    .map((name) => join(folder, name));
}

/**
 * The SDKs Herald requires lazily (inside the composition roots, on first use). Left out of
 * the bundle, they are read from node_modules only when a function first needs them; inlined,
 * their code is parsed at every cold start even though it does not run.
 */
export const LAZY_SDKS = [
  "botbuilder",
  "botframework-connector",
  "@azure/data-tables",
  "@azure/identity",
  "@azure/service-bus",
];

/** One file for the whole app; `@azure/functions-core` stays external (the worker injects it). */
async function bundleApp(
  root: string,
  outFile: string,
  external: readonly string[],
): Promise<string[]> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- esbuild is a dev tool, loaded only for this step
  const esbuild = require("esbuild") as typeof import("esbuild");
  const entries = readdirSync(join(root, "functions"))
    .filter((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"))
    .sort()
    .map((name) => `require(${JSON.stringify(`./functions/${name.replace(/\.ts$/, "")}`)});`);
  await esbuild.build({
    stdin: { contents: entries.join("\n"), resolveDir: root, loader: "js", sourcefile: "app.js" },
    bundle: true,
    platform: "node",
    target: "node22",
    format: "cjs",
    minify: true,
    external: ["@azure/functions-core", ...external],
    outfile: outFile,
    logLevel: "warning",
  });
  return [outFile];
}

async function probe(probeFile: string, stubDir: string, entries: readonly string[]) {
  const { stdout } = await run(process.execPath, [probeFile, ...entries], {
    env: { ...process.env, NODE_PATH: stubDir, NODE_OPTIONS: "" },
  });
  return JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as ProbeOutput;
}

async function measure(
  variant: ColdStartVariant["variant"],
  entries: readonly string[],
  probeFile: string,
  stubDir: string,
  samples: number,
): Promise<ColdStartVariant> {
  await probe(probeFile, stubDir, entries); // warms the OS file cache; not counted
  const outputs: ProbeOutput[] = [];
  for (let i = 0; i < samples; i++) outputs.push(await probe(probeFile, stubDir, entries));
  const times = outputs.map((o) => o.readyMs).sort((a, b) => a - b);
  const mid = times.length >> 1;
  const median = times.length % 2 === 1 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
  const last = outputs.at(-1)!;
  return {
    variant,
    medianMs: round(median, 0),
    minMs: round(times[0]!, 0),
    maxMs: round(times.at(-1)!, 0),
    samples: outputs.map((o) => round(o.readyMs, 0)),
    registered: last.registered,
    modules: last.modules,
    loadedBytes: last.bytes,
    // A bundle is one file: which SDKs it ran cannot be told from the files read.
    heavyLoaded: variant === "esbuild bundle, all inlined" ? undefined : last.heavyLoaded,
    rssMb: round(last.rssMb, 0),
    entryBytes: sizeOf(entries),
  };
}

/**
 * 4. Cold start: the app built as `npm run build` builds it, and bundled with esbuild (all
 * inlined; or with the lazily loaded SDKs left in node_modules), each loaded in `samples`
 * fresh `node` processes (after one uncounted run).
 */
export async function coldStartScenario(
  root: string,
  outDir: string,
  samples: number,
): Promise<readonly ColdStartVariant[]> {
  const stubDir = join(outDir, "core-stub");
  mkdirSync(join(stubDir, "@azure/functions-core"), { recursive: true });
  writeFileSync(join(stubDir, "@azure/functions-core/index.js"), CORE_STUB);
  const probeFile = join(outDir, "cold-start-probe.js");

  // Bundles live under bench/out so that what stays external resolves from node_modules.
  const built = await buildApp(root, join(outDir, "build"));
  const inlined = await bundleApp(root, join(outDir, "bundle-all", "index.js"), []);
  const slim = await bundleApp(root, join(outDir, "bundle", "index.js"), LAZY_SDKS);
  const variants = [
    await measure("tsc build", built, probeFile, stubDir, samples),
    await measure("esbuild bundle, all inlined", inlined, probeFile, stubDir, samples),
    await measure("esbuild bundle, SDKs external", slim, probeFile, stubDir, samples),
  ];
  for (const v of variants)
    if (v.registered.length === 0)
      throw new Error(`${v.variant}: no function registered (${relative(root, outDir)})`);
  return variants;
}
