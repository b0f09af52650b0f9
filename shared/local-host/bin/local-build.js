// @ts-check
"use strict";
/**
 * Builds Herald's local programs from the TypeScript sources with esbuild: `npm start`'s host
 * (the functions built in), the data folder's Azurite process, the `herald` CLI and the
 * `npm run azurite:*` commands, one self-contained file each in build/local/, packages left in
 * node_modules. esbuild only strips the types, in about a second; type-checking is
 * `npm run typecheck`'s (and CI's) job.
 *
 * A program is rebuilt only when a source it was built from changed. Each file is written beside
 * its target and renamed over it, so a process loading one (a second npm start, a herald
 * command) reads the old file or the new one, never half of either; a running host loaded its
 * whole bundle when it started and never reads it again, so no build (this one, or
 * `npm run build`'s tsc into dist/) can break it.
 */
const { createHash } = require("node:crypto");
const {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} = require("node:fs");
const { basename, dirname, join, relative, resolve } = require("node:path");

const ROOT = resolve(__dirname, "..", "..", "..");
const OUT_DIR = join(ROOT, "build", "local");

/**
 * @typedef {object} Program
 * @property {string} [file] the entry module (relative to the project)
 * @property {() => string} [contents] or the entry's code, generated at build time
 * @property {string[]} [needs] programs it runs (built with it)
 */

/** @type {Record<string, Program>} */
const PROGRAMS = {
  start: { contents: startEntry, needs: ["azurite-daemon"] },
  "azurite-daemon": { file: "shared/local-host/azurite-daemon.ts" },
  azurite: { contents: () => `require("./shared/local-host/azurite-command").main();\n` },
  cli: { file: "shared/cli/main.ts" },
};

/**
 * The function modules, as the Functions host finds them: package.json `main`
 * (`dist/functions/*.js`) names what tsc builds from `functions/*.ts` (outDir dist, rootDir the
 * project), so `npm start` serves the same functions as `func start` and Azure.
 * @returns {string[]}
 */
function functionSources() {
  /** @type {{ main?: unknown }} */
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const main = typeof pkg.main === "string" ? pkg.main.trim() : "";
  const match = /^(?:\.\/)?dist\/(.+)\.js$/.exec(main);
  if (match === null) throw new Error(`package.json main "${main}" is not a dist/….js path`);
  const source = `${match[1]}.ts`;
  if (!source.includes("*")) return [source];
  const folder = dirname(source);
  const pattern = basename(source);
  if (folder.includes("*") || pattern.indexOf("*") !== pattern.lastIndexOf("*")) {
    throw new Error(`package.json main "${main}": only "folder/*.js" globs are supported`);
  }
  const [before = "", after = ""] = pattern.split("*");
  return readdirSync(join(ROOT, folder))
    .filter((name) => name.startsWith(before) && name.endsWith(after))
    .filter((name) => !name.endsWith(".d.ts") && !name.endsWith(".test.ts"))
    .sort()
    .map((name) => `${folder}/${name}`);
}

/** `npm start`: the host, with the function modules loaded while Azurite starts. */
function startEntry() {
  const requires = functionSources()
    .map((file) => `    require(${JSON.stringify(`./${file.replace(/\.ts$/, "")}`)});`)
    .join("\n");
  return [
    `const { runNpmStart } = require("./shared/local-host/main");`,
    `const { registeredFunctions } = require("./shared/registry");`,
    `void runNpmStart({`,
    `  loadFunctions: () => {`,
    requires,
    `    return registeredFunctions();`,
    `  },`,
    `});`,
    ``,
  ].join("\n");
}

/** @param {string} name */
function outputOf(name) {
  return join(OUT_DIR, `${name}.js`);
}

/**
 * @param {string} name
 * @param {string | undefined} contents
 */
function isFresh(name, contents) {
  /** @type {{ esbuild?: string, contents?: string, inputs?: Record<string, [number, number]> }} */
  let meta;
  try {
    meta = JSON.parse(readFileSync(join(OUT_DIR, `${name}.meta.json`), "utf8"));
  } catch {
    return false;
  }
  if (!existsSync(outputOf(name)) || meta.inputs === undefined) return false;
  if (meta.esbuild !== esbuildVersion() || meta.contents !== hash(contents ?? "")) return false;
  return Object.entries(meta.inputs).every(([path, [mtimeMs, size]]) => {
    try {
      const stat = statSync(join(ROOT, path));
      return stat.mtimeMs === mtimeMs && stat.size === size;
    } catch {
      return false;
    }
  });
}

/** @param {string} text */
function hash(text) {
  return createHash("sha256").update(text).digest("hex");
}

function esbuildVersion() {
  /** @type {{ version: string }} */
  const pkg = require("esbuild/package.json");
  return pkg.version;
}

/**
 * @param {string} path
 * @param {string | Uint8Array} contents
 */
function replaceFile(path, contents) {
  const draft = `${path}.${process.pid}.tmp`;
  writeFileSync(draft, contents);
  renameSync(draft, path);
}

/**
 * @param {string} name
 * @param {string | undefined} contents
 */
async function build(name, contents) {
  /** @type {typeof import("esbuild")} */
  const esbuild = require("esbuild");
  const program = PROGRAMS[name];
  if (program === undefined) throw new Error(`unknown program ${name}`);
  const inputs = /** @type {Record<string, [number, number]>} */ ({});
  const entryName = `<${name} entry>`;
  // Stat before building: a source saved during the build makes the next run build again.
  for (const file of ["package.json", "tsconfig.json"]) {
    const stat = statSync(join(ROOT, file));
    inputs[file] = [stat.mtimeMs, stat.size];
  }
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    ...(contents !== undefined
      ? { stdin: { contents, resolveDir: ROOT, sourcefile: entryName, loader: "js" } }
      : { entryPoints: [join(ROOT, program.file ?? "")] }),
    outfile: outputOf(name),
    bundle: true,
    platform: "node",
    target: "node22",
    format: "cjs",
    packages: "external",
    sourcemap: true,
    metafile: true,
    write: false,
    logLevel: "error",
  });
  for (const path of Object.keys(result.metafile.inputs)) {
    if (path === entryName || path.startsWith("<")) continue; // the generated entry
    const stat = statSync(join(ROOT, path));
    inputs[path] = [stat.mtimeMs, stat.size];
  }
  mkdirSync(OUT_DIR, { recursive: true });
  // The map first, so the bundle never points at a map that is not there yet.
  const maps = result.outputFiles.filter((file) => file.path.endsWith(".map"));
  const code = result.outputFiles.filter((file) => !file.path.endsWith(".map"));
  for (const file of [...maps, ...code]) replaceFile(file.path, file.contents);
  replaceFile(
    join(OUT_DIR, `${name}.meta.json`),
    `${JSON.stringify({ esbuild: esbuildVersion(), contents: hash(contents ?? ""), inputs })}\n`,
  );
}

/**
 * Builds what `names` need that is not up to date. Returns the programs built (empty: nothing
 * changed) and how long it took; `onBuilding` is called first when something is built.
 * @param {string[]} names
 * @param {{ onBuilding?: (names: string[]) => void }} [options]
 * @returns {Promise<{ built: string[], ms: number }>}
 */
async function ensureBuilt(names, options = {}) {
  const started = performance.now();
  const wanted = new Set();
  for (const name of names) {
    wanted.add(name);
    for (const need of PROGRAMS[name]?.needs ?? []) wanted.add(need);
  }
  const stale = [];
  for (const name of wanted) {
    const program = PROGRAMS[name];
    if (program === undefined) throw new Error(`unknown program ${name}`);
    const contents = program.contents?.();
    if (!isFresh(name, contents)) stale.push({ name, contents });
  }
  if (stale.length === 0) return { built: [], ms: performance.now() - started };
  options.onBuilding?.(stale.map((s) => s.name));
  await Promise.all(stale.map(({ name, contents }) => build(name, contents)));
  return { built: stale.map((s) => s.name), ms: performance.now() - started };
}

/**
 * Runs a built program in this process, with `args` as its command line.
 * @param {string} name
 * @param {string[]} args
 */
function runBuilt(name, args) {
  const file = outputOf(name);
  process.argv = [process.argv[0] ?? process.execPath, file, ...args];
  // Stack traces name the TypeScript sources (the bundles carry source maps).
  process.setSourceMapsEnabled(true);
  require(file);
}

/** Whether this is the repository (sources and esbuild here), not an installed package. */
function canBuild() {
  try {
    require.resolve("esbuild");
  } catch {
    return false;
  }
  return existsSync(join(ROOT, "shared", "local-host", "main.ts"));
}

module.exports = {
  /** Where the programs go, relative to the project: `build/local`. */
  OUT: relative(ROOT, OUT_DIR),
  canBuild,
  ensureBuilt,
  runBuilt,
};
