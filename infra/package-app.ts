import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { finished } from "node:stream/promises";

import type * as esbuild from "esbuild";
import { ZipFile } from "yazl";

/**
 * `npm run package:app`: the Function App deployment package, `build/herald-app.zip`, and the
 * same files unzipped in `build/herald-app/` (what azd zips; see azure.yaml `dist`).
 *
 *   host.json
 *   package.json            `main: index.js`, no dependencies to install
 *   index.js                every functions/*.ts registration, bundled; the lazily loaded SDKs stay
 *                           external, so a cold start parses only what registration needs
 *   node_modules/<sdk>/     each lazily loaded SDK as one bundled file, read on first use
 *
 * No dev dependency can get in: nothing is copied from node_modules, esbuild follows imports
 * from the entry points only. `remoteBuild` is off: the package runs as it is.
 */

/** The repository root, found from this file whether it runs from infra/ or as a bundle. */
function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "host.json")) && existsSync(path.join(dir, "functions")))
      return dir;
    if (path.dirname(dir) === dir) return path.resolve(__dirname, "..");
  }
}

export const REPO_ROOT = findRepoRoot(__dirname);
export const APP_DIR = path.join(REPO_ROOT, "build", "herald-app");
export const APP_ZIP = path.join(REPO_ROOT, "build", "herald-app.zip");

/**
 * The SDKs Herald requires on first use (the composition roots). Bundled into the app they would
 * be parsed at every cold start; kept as separate files they load when a function needs them.
 * Keep in step with LAZY_SDKS in bench/cold-start.ts (a test checks).
 */
export const LAZY_SDKS = [
  "botbuilder",
  "botframework-connector",
  "@azure/data-tables",
  "@azure/identity",
  "@azure/service-bus",
] as const;

/** The Functions worker injects this module; it must never be bundled. */
const WORKER_MODULE = "@azure/functions-core";

const NODE_TARGET = "node22";

function loadEsbuild(): typeof esbuild {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- esbuild is a dev tool, loaded only to build the package
  return require("esbuild") as typeof esbuild;
}

function functionEntries(): string[] {
  return readdirSync(path.join(REPO_ROOT, "functions"))
    .filter((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"))
    .sort()
    .map((name) => `./functions/${name.replace(/\.ts$/, "")}`);
}

function version(pkg: string): string {
  const file = path.join(REPO_ROOT, "node_modules", pkg, "package.json");
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

async function bundleApp(build: typeof esbuild, outDir: string): Promise<void> {
  await build.build({
    stdin: {
      contents: functionEntries()
        .map((entry) => `require(${JSON.stringify(entry)});`)
        .join("\n"),
      resolveDir: REPO_ROOT,
      loader: "js",
      sourcefile: "herald-app.js",
    },
    bundle: true,
    platform: "node",
    target: NODE_TARGET,
    format: "cjs",
    minify: true,
    keepNames: true,
    legalComments: "none",
    external: [WORKER_MODULE, ...LAZY_SDKS],
    outfile: path.join(outDir, "index.js"),
    logLevel: "warning",
  });
}

/** One SDK as `node_modules/<name>/index.js`; the other lazy SDKs stay shared, not copied in. */
async function bundleSdk(build: typeof esbuild, outDir: string, sdk: string): Promise<void> {
  const dir = path.join(outDir, "node_modules", sdk);
  await build.build({
    entryPoints: [require.resolve(sdk, { paths: [REPO_ROOT] })],
    bundle: true,
    platform: "node",
    target: NODE_TARGET,
    format: "cjs",
    minify: true,
    keepNames: true,
    legalComments: "none",
    external: [WORKER_MODULE, ...LAZY_SDKS.filter((other) => other !== sdk)],
    outfile: path.join(dir, "index.js"),
    logLevel: "error",
  });
  const manifest = { name: sdk, version: version(sdk), main: "index.js", private: true };
  writeFileSync(path.join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
}

function writeManifest(outDir: string): void {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
    name: string;
    version: string;
    description?: string;
    license?: string;
  };
  const manifest = {
    name: pkg.name,
    version: pkg.version,
    description: pkg.description,
    license: pkg.license,
    private: true,
    main: "index.js",
  };
  writeFileSync(path.join(outDir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(path.join(outDir, "host.json"), readFileSync(path.join(REPO_ROOT, "host.json")));
}

function filesUnder(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      return entry.isDirectory() ? filesUnder(full, base) : [path.relative(base, full)];
    })
    .sort();
}

async function zipDirectory(dir: string, zipFile: string): Promise<string[]> {
  const files = filesUnder(dir).map((f) => f.split(path.sep).join("/"));
  const mtime = new Date(Date.UTC(2024, 0, 1)); // reproducible archives
  const zip = new ZipFile();
  for (const file of files) zip.addFile(path.join(dir, file), file, { mtime, mode: 0o100644 });
  zip.end();
  const out = createWriteStream(zipFile);
  zip.outputStream.pipe(out);
  await finished(out);
  return files;
}

export interface AppPackage {
  readonly zipFile: string;
  readonly dir: string;
  readonly files: readonly string[];
  readonly zipBytes: number;
}

export async function buildAppPackage(
  options: { dir?: string; zipFile?: string } = {},
): Promise<AppPackage> {
  const dir = options.dir ?? APP_DIR;
  const zipFile = options.zipFile ?? APP_ZIP;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const build = loadEsbuild();
  await bundleApp(build, dir);
  for (const sdk of LAZY_SDKS) await bundleSdk(build, dir, sdk);
  writeManifest(dir);
  const files = await zipDirectory(dir, zipFile);
  return { zipFile, dir, files, zipBytes: statSync(zipFile).size };
}

if (require.main === module) {
  buildAppPackage()
    .then((result) => {
      const mb = (result.zipBytes / 1024 / 1024).toFixed(2);
      console.log(
        `${path.relative(process.cwd(), result.zipFile)}: ${mb} MB, ${result.files.length} files ` +
          `(unzipped in ${path.relative(process.cwd(), result.dir)}/)`,
      );
    })
    .catch((error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    });
}
