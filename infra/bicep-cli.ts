import { execFileSync, spawnSync } from "node:child_process";
import { accessSync, chmodSync, constants, existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

/**
 * `npm run infra:build`: compiles infra/main.bicep and infra/main.bicepparam with the real Bicep
 * CLI and runs its linter (infra/bicepconfig.json); any error or warning fails the build.
 *
 * The CLI is `bicep` from PATH when there is one, else the pinned NuGet package
 * Azure.Bicep.CommandLine.linux-x64, restored with `dotnet restore` into `.tools/bicep` (git-ignored).
 * The linter's use-recent-api-versions rule depends on the CLI's type data, so CI pins the
 * version: a newer CLI on PATH is used but reported.
 */

export const BICEP_VERSION = "0.49.2";
const NUGET_PACKAGE = "Azure.Bicep.CommandLine.linux-x64";

/** The repository root, found from this file whether it runs from infra/ or as a bundle. */
function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "infra", "main.bicep"))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(__dirname, "..");
  }
}

export const REPO_ROOT = findRepoRoot(__dirname);
export const INFRA_DIR = path.join(REPO_ROOT, "infra");
export const TOOLS_DIR = path.join(REPO_ROOT, ".tools", "bicep");
export const COMPILED_DIR = path.join(REPO_ROOT, "build", "infra");
export const COMPILED_TEMPLATE = path.join(COMPILED_DIR, "main.json");
export const COMPILED_PARAMETERS = path.join(COMPILED_DIR, "main.parameters.json");

export const HOW_TO_ENABLE =
  "Install the .NET SDK (dotnet) with access to a NuGet feed serving " +
  `${NUGET_PACKAGE} ${BICEP_VERSION}, or put the Bicep CLI on PATH as \`bicep\`, then run \`npm run infra:build\`.`;

export type BicepLocation =
  | {
      readonly kind: "found";
      readonly file: string;
      readonly version: string;
      readonly from: string;
    }
  | { readonly kind: "missing"; readonly reason: string };

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false; // not there, or not executable: the caller tries the next place
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const file = path.join(dir, name);
    if (isExecutable(file)) return file;
  }
  return undefined;
}

function versionOf(file: string): string {
  const out = execFileSync(file, ["--version"], { encoding: "utf8" });
  return /(\d+\.\d+\.\d+)/.exec(out)?.[1] ?? out.trim();
}

/** Where `dotnet restore --packages` puts the executable (NuGet lower-cases the folder names). */
export function restoredExecutable(toolsDir = TOOLS_DIR, version = BICEP_VERSION): string {
  return path.join(toolsDir, "packages", NUGET_PACKAGE.toLowerCase(), version, "tools", "bicep");
}

/** A project that only downloads the CLI package: PackageDownload needs an exact [version]. */
export function restoreProject(version = BICEP_VERSION): string {
  return [
    '<Project Sdk="Microsoft.NET.Sdk">',
    "  <!-- Written by infra/bicep-cli.ts: restores the pinned Bicep CLI, builds nothing. -->",
    "  <PropertyGroup>",
    "    <TargetFramework>netstandard2.0</TargetFramework>",
    "  </PropertyGroup>",
    "  <ItemGroup>",
    `    <PackageDownload Include="${NUGET_PACKAGE}" Version="[${version}]" />`,
    "  </ItemGroup>",
    "</Project>",
    "",
  ].join("\n");
}

/** NuGet's codes for a feed it could not reach or that lacks the package (NU1301, NU1101, NU1102). */
const FEED_UNAVAILABLE = /\bNU1(?:301|101|102)\b|Unable to load the service index/;

/** Thrown when dotnet cannot get the package: no feed, or a feed without it. Not a build error. */
class BicepRestoreUnavailableError extends Error {}

/** Restores the pinned CLI with dotnet; the package's executable comes without its x bit. */
function restore(dotnet: string, toolsDir: string, env: NodeJS.ProcessEnv): string {
  mkdirSync(toolsDir, { recursive: true });
  const project = path.join(toolsDir, "restore-bicep.csproj");
  writeFileSync(project, restoreProject());
  const result = spawnSync(
    dotnet,
    ["restore", project, "--packages", path.join(toolsDir, "packages"), "--nologo"],
    { encoding: "utf8", env: { ...env, DOTNET_CLI_TELEMETRY_OPTOUT: "1" } },
  );
  if (result.status !== 0) {
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}`;
    const message = `dotnet restore of ${NUGET_PACKAGE} ${BICEP_VERSION} failed:\n${output}`;
    if (FEED_UNAVAILABLE.test(output)) throw new BicepRestoreUnavailableError(message);
    throw new Error(message);
  }
  const file = restoredExecutable(toolsDir);
  if (!existsSync(file)) throw new Error(`dotnet restore did not produce ${file}`);
  chmodSync(file, 0o755);
  return file;
}

/**
 * Finds the Bicep CLI: PATH, then a previous restore, then a restore with dotnet (when
 * `restoreWithDotnet`). Never throws for "not installed" nor for "NuGet unreachable": that is
 * `kind: "missing"`, with the reason.
 */
export function locateBicep(
  options: { restoreWithDotnet?: boolean; env?: NodeJS.ProcessEnv; toolsDir?: string } = {},
): BicepLocation {
  const env = options.env ?? process.env;
  const toolsDir = options.toolsDir ?? TOOLS_DIR;
  const fromPath = onPath("bicep", env);
  if (fromPath !== undefined) {
    return { kind: "found", file: fromPath, version: versionOf(fromPath), from: "PATH" };
  }
  const restored = restoredExecutable(toolsDir);
  if (existsSync(restored)) {
    if (!isExecutable(restored)) chmodSync(restored, 0o755);
    return { kind: "found", file: restored, version: BICEP_VERSION, from: "NuGet (cached)" };
  }
  const dotnet = onPath("dotnet", env);
  if (dotnet === undefined) {
    return { kind: "missing", reason: "neither `bicep` nor `dotnet` is on PATH" };
  }
  if (options.restoreWithDotnet === false) {
    return { kind: "missing", reason: "the Bicep CLI has not been restored yet" };
  }
  try {
    return {
      kind: "found",
      file: restore(dotnet, toolsDir, env),
      version: BICEP_VERSION,
      from: "NuGet",
    };
  } catch (error) {
    if (!(error instanceof BicepRestoreUnavailableError)) throw error;
    // dotnet is here but no NuGet feed serves the package (offline, a proxy, a private feed):
    // the CLI is missing, as without dotnet; anything else dotnet says is a real failure.
    const code = FEED_UNAVAILABLE.exec(error.message)?.[0] ?? "NuGet unreachable";
    return {
      kind: "missing",
      reason: `dotnet could not restore ${NUGET_PACKAGE} ${BICEP_VERSION} from NuGet (${code})`,
    };
  }
}

export interface Diagnostic {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly level: "Error" | "Warning" | "Info";
  readonly code: string;
  readonly message: string;
}

const DIAGNOSTIC = /^(.+?)\((\d+),(\d+)\) : (Error|Warning|Info) ([\w-]+): (.*)$/;

/** The CLI's diagnostic lines (`file(line,col) : Warning rule: message`), each once. */
export function parseDiagnostics(output: string): Diagnostic[] {
  const seen = new Set<string>();
  const found: Diagnostic[] = [];
  for (const line of output.split(/\r?\n/)) {
    const match = DIAGNOSTIC.exec(line.trim());
    if (match === null || seen.has(match[0])) continue;
    seen.add(match[0]);
    found.push({
      file: match[1]!,
      line: Number(match[2]),
      column: Number(match[3]),
      level: match[4] as Diagnostic["level"],
      code: match[5]!,
      message: match[6]!,
    });
  }
  return found;
}

export interface BuildResult {
  readonly diagnostics: readonly Diagnostic[];
  readonly errors: number;
  readonly warnings: number;
  /** Output of a command that failed without a diagnostic line (a crash, a bad flag). */
  readonly failures: readonly string[];
}

function runBicep(bicep: string, args: readonly string[]): { output: string; ok: boolean } {
  const result = spawnSync(bicep, args, {
    cwd: REPO_ROOT,
    encoding: "utf8",
    env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: "1" },
  });
  return { output: `${result.stdout ?? ""}${result.stderr ?? ""}`, ok: result.status === 0 };
}

/** Compiles main.bicep and main.bicepparam into `outDir` and lints both. */
export function buildInfra(bicep: string, outDir = COMPILED_DIR): BuildResult {
  mkdirSync(outDir, { recursive: true });
  const config = path.join(INFRA_DIR, "bicepconfig.json");
  const main = path.join(INFRA_DIR, "main.bicep");
  const params = path.join(INFRA_DIR, "main.bicepparam");
  const steps = [
    ["build", main, "--outfile", path.join(outDir, "main.json")],
    ["build-params", params, "--outfile", path.join(outDir, "main.parameters.json")],
    ["lint", main, "--config", config],
    ["lint", params, "--config", config],
  ];
  let output = "";
  const failures: string[] = [];
  for (const args of steps) {
    const run = runBicep(bicep, args);
    output += run.output;
    if (!run.ok && parseDiagnostics(run.output).length === 0) {
      failures.push(`bicep ${args[0]} ${path.relative(REPO_ROOT, args[1]!)}: ${run.output.trim()}`);
    }
  }
  const diagnostics = parseDiagnostics(output);
  return {
    diagnostics,
    errors: diagnostics.filter((d) => d.level === "Error").length + failures.length,
    warnings: diagnostics.filter((d) => d.level === "Warning").length,
    failures,
  };
}

export function main(): number {
  const located = locateBicep();
  if (located.kind === "missing") {
    console.error(`infra:build: no Bicep CLI (${located.reason}). ${HOW_TO_ENABLE}`);
    return 1;
  }
  const note = located.version === BICEP_VERSION ? "" : ` (pinned: ${BICEP_VERSION})`;
  console.log(`Bicep CLI ${located.version}${note} from ${located.from}: ${located.file}`);
  const result = buildInfra(located.file);
  for (const d of result.diagnostics) {
    console.log(
      `${path.relative(REPO_ROOT, d.file)}(${d.line},${d.column}) ${d.level} ${d.code}: ${d.message}`,
    );
  }
  for (const failure of result.failures) console.log(failure);
  console.log(
    `infra:build: main.bicep + main.bicepparam compiled to ${path.relative(REPO_ROOT, COMPILED_DIR)}/; ` +
      `linter (infra/bicepconfig.json): ${result.errors} errors, ${result.warnings} warnings`,
  );
  return result.errors + result.warnings === 0 ? 0 : 1;
}

if (require.main === module) {
  try {
    process.exitCode = main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  }
}
