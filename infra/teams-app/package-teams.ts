import { execFileSync } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { finished } from "node:stream/promises";

import Ajv, { type ValidateFunction } from "ajv-draft-04";
import addFormats from "ajv-formats";
import { Command } from "commander";
import { ZipFile } from "yazl";
import { z } from "zod";

import { colorIcon, encodePng, outlineIcon } from "./teams-icons";

/**
 * `npm run package:teams`: fills the Teams app manifest template (infra/teams-app/manifest.json)
 * with values from the deployment, validates it against the vendored schema and zips it with the
 * icons into the package an admin uploads to Teams.
 *
 * Values come from, first to last: command-line flags, `--outputs <file>` (the deployment's
 * outputs as JSON), `--resource-group <rg>` (asks `az` for them), environment variables named
 * like the Bicep outputs (what azd exports to its hooks), then defaults.
 */

/** The repository root, found from this file whether it runs from infra/teams-app/ or as a bundle. */
function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "infra", "teams-app", "manifest.json"))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(__dirname, "..", "..");
  }
}

export const REPO_ROOT = findRepoRoot(__dirname);
export const TEAMS_APP_DIR = path.join(REPO_ROOT, "infra", "teams-app");
export const DEFAULT_PACKAGE = path.join(REPO_ROOT, "build", "herald-teams-app.zip");

const guid = z
  .string()
  .trim()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, "must be a GUID");
const httpsUrl = z
  .string()
  .trim()
  .regex(/^https:\/\/[^\s"]+$/, "must be an https:// URL");

export const packageValuesSchema = z.object({
  /** Microsoft App id of the bot (Bicep output botAppId). */
  botAppId: guid,
  /** Id of the Teams app (Bicep output teamsAppId). */
  teamsAppId: guid,
  /** Host name of the Function App (Bicep output functionAppHostName). */
  functionAppHostName: z
    .string()
    .trim()
    .regex(
      /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i,
      "must be a host name",
    ),
  appVersion: z
    .string()
    .trim()
    .regex(/^\d+\.\d+\.\d+$/, "must be a version like 1.2.3"),
  developerName: z.string().trim().min(1).max(32),
  websiteUrl: httpsUrl,
  privacyUrl: httpsUrl,
  termsOfUseUrl: httpsUrl,
});

export type PackageValues = z.infer<typeof packageValuesSchema>;
type RawValues = Partial<Record<keyof PackageValues, string>>;

const VALUE_NAMES = Object.keys(packageValuesSchema.shape) as (keyof PackageValues)[];

/** Values only the deployment knows, with the flag that gives each by hand. */
const REQUIRED_FROM_DEPLOYMENT = {
  botAppId: "--bot-app-id",
  teamsAppId: "--teams-app-id",
  functionAppHostName: "--host",
} as const;

/** Bicep outputs as `az deployment group show --query properties.outputs` prints them, or flat. */
export function valuesFromOutputs(outputs: unknown): RawValues {
  const values: RawValues = {};
  if (outputs === null || typeof outputs !== "object") return values;
  const record = outputs as Record<string, unknown>;
  for (const name of VALUE_NAMES) {
    const entry = record[name];
    const value =
      entry !== null && typeof entry === "object" && "value" in entry ? entry.value : entry;
    if (typeof value === "string" && value !== "") values[name] = value;
  }
  return values;
}

function valuesFromEnvironment(env: NodeJS.ProcessEnv): RawValues {
  return valuesFromOutputs(env);
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
    version?: string;
  };
  return pkg.version ?? "1.0.0";
}

/** Merges sources (earlier wins), fills defaults and validates; the error names every bad value. */
export function resolveValues(...sources: RawValues[]): PackageValues {
  const merged: RawValues = {};
  for (const source of [...sources].reverse()) Object.assign(merged, source);
  const missing = Object.entries(REQUIRED_FROM_DEPLOYMENT)
    .filter(([name]) => merged[name as keyof PackageValues] === undefined)
    .map(([name, flag]) => `  - ${name}: missing (Bicep output ${name}, or ${flag})`);
  if (missing.length > 0) {
    throw new Error(
      `Cannot build the Teams app package:\n${missing.join("\n")}\n` +
        "Pass --resource-group <rg> or --outputs <file> to read the deployment's outputs (see --help).",
    );
  }
  const host = merged.functionAppHostName;
  const site = host === undefined ? undefined : `https://${host}/`;
  const withDefaults = {
    appVersion: packageVersion(),
    developerName: "Herald",
    websiteUrl: site,
    privacyUrl: merged.websiteUrl ?? site,
    termsOfUseUrl: merged.websiteUrl ?? site,
    ...merged,
  };
  const parsed = packageValuesSchema.safeParse(withDefaults);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  - ${i.path.join(".")}: ${i.message}`);
    throw new Error(
      `Cannot build the Teams app package:\n${problems.join("\n")}\n` +
        "See npm run package:teams -- --help.",
    );
  }
  return parsed.data;
}

/** Replaces every `{{name}}` in the manifest template; an unknown name is an error. */
export function fillManifest(template: string, values: PackageValues): unknown {
  const text = template.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => {
    if (!(name in values)) throw new Error(`manifest.json: unknown placeholder {{${name}}}`);
    // JSON-escape the value, without its surrounding quotes: it sits inside a JSON string.
    return JSON.stringify(values[name as keyof PackageValues]).slice(1, -1);
  });
  return JSON.parse(text);
}

/** Path of the vendored schema a manifest's `$schema` URL names (infra/teams-app/schema/vX/). */
export function schemaFileFor(manifest: unknown): string {
  const url = (manifest as { $schema?: unknown }).$schema;
  const match =
    typeof url === "string" ? /\/teams\/(v[\w.]+)\/MicrosoftTeams\.schema\.json$/.exec(url) : null;
  if (match?.[1] === undefined) throw new Error(`manifest.json: unexpected $schema ${String(url)}`);
  return path.join(TEAMS_APP_DIR, "schema", match[1], "MicrosoftTeams.schema.json");
}

const validators = new Map<string, ValidateFunction>();

function validatorFor(schemaFile: string): ValidateFunction {
  let validate = validators.get(schemaFile);
  if (validate === undefined) {
    const schema = JSON.parse(readFileSync(schemaFile, "utf8")) as Record<string, unknown>;
    // Microsoft's manifest schema is JSON Schema draft-04, which is what ajv-draft-04 speaks;
    // strict mode would reject its vendor keywords.
    const ajv = new Ajv({ allErrors: true, strict: false });
    addFormats(ajv);
    validate = ajv.compile(schema);
    validators.set(schemaFile, validate);
  }
  return validate;
}

/** Errors of a manifest against the schema its `$schema` names; empty when valid. */
export function validateManifest(manifest: unknown): string[] {
  const validate = validatorFor(schemaFileFor(manifest));
  if (validate(manifest)) return [];
  return (validate.errors ?? []).map(
    (e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`,
  );
}

export function readTemplate(): string {
  return readFileSync(path.join(TEAMS_APP_DIR, "manifest.json"), "utf8");
}

/** Builds the zip: manifest.json, color.png and outline.png at its root, as Teams expects. */
export async function buildTeamsPackage(
  values: PackageValues,
  outFile = DEFAULT_PACKAGE,
): Promise<{ outFile: string; manifest: Record<string, unknown> }> {
  const manifest = fillManifest(readTemplate(), values) as Record<string, unknown>;
  const errors = validateManifest(manifest);
  if (errors.length > 0) {
    throw new Error(`The filled manifest does not match its schema:\n  - ${errors.join("\n  - ")}`);
  }
  const icons = manifest.icons as { color: string; outline: string };
  // A fixed time stamp: the same inputs give the same bytes.
  const mtime = new Date(Date.UTC(2024, 0, 1));
  const zip = new ZipFile();
  zip.addBuffer(Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), "manifest.json", { mtime });
  for (const icon of [icons.color, icons.outline]) {
    zip.addBuffer(readFileSync(path.join(TEAMS_APP_DIR, icon)), icon, { mtime });
  }
  mkdirSync(path.dirname(outFile), { recursive: true });
  const out = createWriteStream(outFile);
  zip.outputStream.pipe(out);
  zip.end();
  await finished(out);
  return { outFile, manifest };
}

/** Regenerates the icons from infra/teams-app/teams-icons.ts. */
export function writeIcons(dir = TEAMS_APP_DIR): string[] {
  const files = [
    [path.join(dir, "color.png"), encodePng(colorIcon())],
    [path.join(dir, "outline.png"), encodePng(outlineIcon())],
  ] as const;
  for (const [file, png] of files) writeFileSync(file, png);
  return files.map(([file]) => file);
}

function az(args: readonly string[]): unknown {
  return JSON.parse(execFileSync("az", [...args, "--output", "json"], { encoding: "utf8" }));
}

function deploymentOutputs(resourceGroup: string, deployment: string): unknown {
  return az([
    "deployment",
    "group",
    "show",
    "--resource-group",
    resourceGroup,
    "--name",
    deployment,
    "--query",
    "properties.outputs",
  ]);
}

/** A resource-group deployment as `az deployment group list` prints it (the fields we read). */
export interface DeploymentSummary {
  name: string;
  tags?: Record<string, string> | null;
  properties?: { provisioningState?: string; timestamp?: string } | null;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^$(){}|[\]\\]/g, "\\$&");
}

/** The name `az deployment group create -f infra/main.bicep` gives a deployment by default. */
export const AZ_DEFAULT_DEPLOYMENT = "main";

/**
 * Which deployment holds Herald's outputs. azd names each deployment `<environment>-<unix time>`
 * (a new name every `azd provision`) and tags it `azd-env-name: <environment>`; see
 * `GenerateDeploymentName` in azure-dev's cli/azd/pkg/azapi/standard_deployments.go. So with an
 * azd environment name (AZURE_ENV_NAME, set in azd hooks and `azd env get-values`) the latest
 * successful deployment carrying that tag, or named that way, wins; without one, `main`.
 */
export function pickDeployment(
  deployments: readonly DeploymentSummary[],
  azdEnvName: string | undefined,
): string {
  if (azdEnvName === undefined || azdEnvName === "") return AZ_DEFAULT_DEPLOYMENT;
  const named = new RegExp(`^${escapeRegExp(azdEnvName)}-\\d+$`);
  const candidates = deployments
    .filter((d) => d.tags?.["azd-env-name"] === azdEnvName || named.test(d.name))
    .filter((d) => d.properties?.provisioningState === "Succeeded")
    .sort((a, b) => (a.properties?.timestamp ?? "").localeCompare(b.properties?.timestamp ?? ""));
  const latest = candidates.at(-1);
  if (latest === undefined) {
    throw new Error(
      `No successful azd deployment of environment "${azdEnvName}" in the resource group ` +
        "(looked for the azd-env-name tag and names like <environment>-<unix time>). " +
        "Pass --deployment <name>.",
    );
  }
  return latest.name;
}

function listDeployments(resourceGroup: string): DeploymentSummary[] {
  return az([
    "deployment",
    "group",
    "list",
    "--resource-group",
    resourceGroup,
  ]) as DeploymentSummary[];
}

interface CliOptions {
  outputs?: string;
  resourceGroup?: string;
  deployment?: string;
  botAppId?: string;
  teamsAppId?: string;
  host?: string;
  appVersion?: string;
  developerName?: string;
  websiteUrl?: string;
  privacyUrl?: string;
  termsUrl?: string;
  out: string;
  writeIcons?: boolean;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const program = new Command()
    .name("package-teams")
    .description("Build the Teams app package (.zip) for Herald from the deployment's outputs.")
    .option(
      "--outputs <file>",
      "deployment outputs as JSON (az deployment group show --query properties.outputs)",
    )
    .option(
      "-g, --resource-group <name>",
      "read the outputs of the deployment in this resource group with az",
    )
    .option(
      "--deployment <name>",
      "deployment name in that resource group (default: the latest azd deployment of AZURE_ENV_NAME, else main)",
    )
    .option("--bot-app-id <guid>", "Microsoft App id of the bot (output botAppId)")
    .option("--teams-app-id <guid>", "id of the Teams app (output teamsAppId)")
    .option("--host <name>", "Function App host name (output functionAppHostName)")
    .option("--app-version <x.y.z>", "app version; raise it for every update you upload")
    .option("--developer-name <name>", "publisher name shown in Teams")
    .option("--website-url <url>", "your support page")
    .option("--privacy-url <url>", "your privacy statement")
    .option("--terms-url <url>", "your terms of use")
    .option("--out <file>", "where to write the package", DEFAULT_PACKAGE)
    .option("--write-icons", "only regenerate infra/teams-app/color.png and outline.png")
    .exitOverride();
  program.parse(argv);
  const options = program.opts<CliOptions>();

  if (options.writeIcons === true) {
    const files = writeIcons();
    for (const file of files) console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return files[0]!;
  }

  const flags: RawValues = {};
  const set = (key: keyof PackageValues, value: string | undefined): void => {
    if (value !== undefined) flags[key] = value;
  };
  set("botAppId", options.botAppId);
  set("teamsAppId", options.teamsAppId);
  set("functionAppHostName", options.host);
  set("appVersion", options.appVersion);
  set("developerName", options.developerName);
  set("websiteUrl", options.websiteUrl);
  set("privacyUrl", options.privacyUrl);
  set("termsOfUseUrl", options.termsUrl);

  const fromFile =
    options.outputs === undefined
      ? {}
      : valuesFromOutputs(JSON.parse(readFileSync(options.outputs, "utf8")));
  const resourceGroup = options.resourceGroup;
  const fromAzure =
    resourceGroup === undefined
      ? {}
      : valuesFromOutputs(
          deploymentOutputs(
            resourceGroup,
            options.deployment ??
              pickDeployment(
                env.AZURE_ENV_NAME === undefined ? [] : listDeployments(resourceGroup),
                env.AZURE_ENV_NAME,
              ),
          ),
        );

  const values = resolveValues(flags, fromFile, fromAzure, valuesFromEnvironment(env));
  const { outFile, manifest } = await buildTeamsPackage(values, path.resolve(options.out));
  console.log(
    [
      `Teams app package: ${outFile}`,
      `  app id   ${String(manifest.id)}  version ${String(manifest.version)}`,
      `  bot id   ${values.botAppId}`,
      `  domain   ${values.functionAppHostName}`,
      "Upload it in the Teams admin center (Teams apps > Manage apps > Upload new app).",
    ].join("\n"),
  );
  return outFile;
}

if (require.main === module) {
  main(process.argv).catch((error: unknown) => {
    const code = (error as { code?: string }).code;
    // commander has printed help or its own error already.
    if (code === "commander.helpDisplayed" || code === "commander.version") return;
    if (typeof code !== "string" || !code.startsWith("commander.")) {
      console.error(error instanceof Error ? error.message : String(error));
    }
    process.exitCode = 1;
  });
}
