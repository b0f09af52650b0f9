import { execFileSync } from "node:child_process";

import { Command, Option } from "commander";
import { z } from "zod";

import { DEFAULT_GRAPH_ENDPOINT } from "../shared/graph/graph-endpoint-policy";
import {
  GRAPH_PERMISSIONS,
  type GraphPermission,
  REQUIRED_GRAPH_PERMISSIONS,
} from "../shared/graph/permissions";

/**
 * `npm run grant:graph`: grants Herald's identity the Microsoft Graph application permissions
 * proactive install needs, by creating app role assignments on its service principal
 * (https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignments). An app role
 * assignment of an application permission *is* the admin consent for it, so whoever runs this
 * needs Privileged Role Administrator (or Global Administrator): the application administrator
 * roles cannot consent to Microsoft Graph's application permissions
 * (https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent).
 *
 * It is a script and not Bicep because granting app roles from Bicep needs the Microsoft Graph
 * Bicep extension, whose types load from a registry CI cannot reach. By default it prints the
 * `az` commands (a bash script an admin can review and run); `--run` runs them with `az`.
 * Either way it is idempotent: a role already assigned is skipped.
 */

/** Microsoft Graph's application id, the same in every tenant and cloud. */
export const MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000";

/** Graph endpoints of the national clouds (https://learn.microsoft.com/graph/deployments). */
export const GRAPH_CLOUDS = {
  public: DEFAULT_GRAPH_ENDPOINT,
  usgov: "https://graph.microsoft.us",
  dod: "https://dod-graph.microsoft.us",
  china: "https://microsoftgraph.chinacloudapi.cn",
} as const;

export type GraphCloud = keyof typeof GRAPH_CLOUDS;

const guid = z
  .string()
  .trim()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, "must be a GUID");
const azName = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9._()-]{1,128}$/, "must be an Azure resource name");

export type Principal =
  | { readonly kind: "id"; readonly id: string }
  | { readonly kind: "identity"; readonly name: string; readonly resourceGroup: string };

export interface GrantInputs {
  readonly principal: Principal;
  /** Graph origin the calls go to, no trailing slash. */
  readonly graphEndpoint: string;
  readonly permissions: readonly GraphPermission[];
}

/** `az` run with these arguments, answering its parsed JSON output (`--output json`). */
export type AzRunner = (args: readonly string[]) => unknown;

function graphUrl(endpoint: string, path: string): string {
  return `${endpoint}/v1.0${path}`;
}

function graphSpUrl(endpoint: string): string {
  return graphUrl(
    endpoint,
    `/servicePrincipals(appId='${MICROSOFT_GRAPH_APP_ID}')?$select=id,appRoles`,
  );
}

function assignmentsUrl(endpoint: string, principalId: string): string {
  return graphUrl(endpoint, `/servicePrincipals/${principalId}/appRoleAssignments`);
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:=@-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** What each permission lets Herald do, for the printed plan and the docs. */
export const WHY: Readonly<Record<GraphPermission, string>> = {
  [GRAPH_PERMISSIONS.installSelf]:
    "install, read and remove Herald's own Teams app (no other app) for any user, and read that installation's 1:1 chat id",
  [GRAPH_PERMISSIONS.readUsers]:
    "read users' profiles (id, UPN, display name, user type) to resolve a UPN to an id",
  [GRAPH_PERMISSIONS.readGroupMembers]:
    "read the (transitive) members of every group, for groupId recipients",
  [GRAPH_PERMISSIONS.readAppCatalog]:
    "read the org app catalog, only to find Herald's catalog id (not needed when TeamsAppCatalogId is set)",
};

/**
 * The bash script an admin reviews and runs: look up the principal and Graph's service
 * principal, then for each role assign it unless already assigned. Nothing here touches the
 * network; it is the plan, printed.
 */
export function planScript(inputs: GrantInputs): string {
  const { graphEndpoint: endpoint } = inputs;
  const resource = ["--resource", endpoint];
  const lines: string[] = [
    "#!/usr/bin/env bash",
    "# Grants Herald's identity the Microsoft Graph application permissions it needs",
    "# (an app role assignment of an application permission is the admin consent for it).",
    "# Run signed in (az login) as a Privileged Role Administrator or Global Administrator.",
    "set -euo pipefail",
    "",
  ];
  if (inputs.principal.kind === "id") {
    lines.push(`PRINCIPAL_ID=${shellQuote(inputs.principal.id)}`);
  } else {
    lines.push(
      "# The managed identity's service principal (object) id:",
      `PRINCIPAL_ID=$(az identity show --name ${shellQuote(inputs.principal.name)} --resource-group ${shellQuote(inputs.principal.resourceGroup)} --query principalId --output tsv)`,
    );
  }
  lines.push(
    "# Microsoft Graph's service principal in this tenant:",
    `GRAPH_SP_ID=$(az rest --method GET ${resource.join(" ")} --url ${shellQuote(graphSpUrl(endpoint))} --query id --output tsv)`,
    "",
  );
  for (const permission of inputs.permissions) {
    lines.push(
      `# ${permission}: ${WHY[permission]}`,
      `ROLE_ID=$(az rest --method GET ${resource.join(" ")} --url ${shellQuote(graphSpUrl(endpoint))} --query ${shellQuote(`appRoles[?value=='${permission}' && contains(allowedMemberTypes, 'Application')].id | [0]`)} --output tsv)`,
      `EXISTING=$(az rest --method GET ${resource.join(" ")} --url "${endpoint}/v1.0/servicePrincipals/$PRINCIPAL_ID/appRoleAssignments" --query "length(value[?appRoleId=='$ROLE_ID' && resourceId=='$GRAPH_SP_ID'])" --output tsv)`,
      `if [ "$EXISTING" = "0" ]; then`,
      `  az rest --method POST ${resource.join(" ")} --url "${endpoint}/v1.0/servicePrincipals/$PRINCIPAL_ID/appRoleAssignments" --headers Content-Type=application/json --body "{\\"principalId\\":\\"$PRINCIPAL_ID\\",\\"resourceId\\":\\"$GRAPH_SP_ID\\",\\"appRoleId\\":\\"$ROLE_ID\\"}" --output none`,
      `  echo "granted ${permission}"`,
      "else",
      `  echo "already granted ${permission}"`,
      "fi",
      "",
    );
  }
  return lines.join("\n");
}

const servicePrincipalAnswer = z.object({
  id: guid,
  appRoles: z.array(
    z.object({ id: guid, value: z.string().nullish(), allowedMemberTypes: z.array(z.string()) }),
  ),
});
const assignmentsAnswer = z.object({
  value: z.array(z.object({ appRoleId: guid, resourceId: guid })),
});

export interface GrantOutcome {
  readonly permission: GraphPermission;
  readonly result: "granted" | "already-granted";
}

/** Runs the plan with `az`: the same lookups and the same skip-if-assigned rule as the script. */
export function runGrant(inputs: GrantInputs, az: AzRunner): GrantOutcome[] {
  const endpoint = inputs.graphEndpoint;
  const rest = (method: "GET" | "POST", url: string, body?: unknown): unknown =>
    az([
      "rest",
      "--method",
      method,
      "--resource",
      endpoint,
      "--url",
      url,
      ...(body === undefined
        ? []
        : ["--headers", "Content-Type=application/json", "--body", JSON.stringify(body)]),
    ]);
  const principalId =
    inputs.principal.kind === "id"
      ? inputs.principal.id
      : guid.parse(
          z
            .object({ principalId: z.string() })
            .parse(
              az([
                "identity",
                "show",
                "--name",
                inputs.principal.name,
                "--resource-group",
                inputs.principal.resourceGroup,
              ]),
            ).principalId,
        );
  const graph = servicePrincipalAnswer.parse(rest("GET", graphSpUrl(endpoint)));
  const existing = assignmentsAnswer.parse(rest("GET", assignmentsUrl(endpoint, principalId)));
  return inputs.permissions.map((permission) => {
    const role = graph.appRoles.find(
      (r) => r.value === permission && r.allowedMemberTypes.includes("Application"),
    );
    if (role === undefined)
      throw new Error(`Microsoft Graph has no application permission ${permission} in this cloud`);
    const assigned = existing.value.some(
      (a) => a.appRoleId === role.id && a.resourceId === graph.id,
    );
    if (assigned) return { permission, result: "already-granted" as const };
    rest("POST", assignmentsUrl(endpoint, principalId), {
      principalId,
      resourceId: graph.id,
      appRoleId: role.id,
    });
    return { permission, result: "granted" as const };
  });
}

function realAz(args: readonly string[]): unknown {
  const out = execFileSync("az", [...args, "--output", "json"], { encoding: "utf8" });
  return out.trim() === "" ? undefined : JSON.parse(out);
}

interface CliOptions {
  principalId?: string;
  identityName?: string;
  resourceGroup?: string;
  graphEndpoint?: string;
  cloud: GraphCloud;
  catalogLookup?: boolean;
  run?: boolean;
}

/** Parses the command line into the plan's inputs (throws with a clear message). */
export function parseArgs(argv: readonly string[]): { inputs: GrantInputs; run: boolean } {
  const program = new Command()
    .name("grant-graph")
    .description(
      "Grant Herald's identity the Microsoft Graph application permissions for proactive install (prints the az commands; --run runs them).",
    )
    .option(
      "--principal-id <guid>",
      "object id of the identity's service principal (Bicep output managedIdentityPrincipalId)",
    )
    .option(
      "--identity-name <name>",
      "name of the user-assigned managed identity (instead of --principal-id)",
    )
    .option("-g, --resource-group <name>", "resource group of that identity")
    .addOption(
      new Option("--cloud <cloud>", "national cloud of the tenant")
        .choices(Object.keys(GRAPH_CLOUDS))
        .default("public"),
    )
    .option("--graph-endpoint <url>", "Graph endpoint (overrides --cloud), like GraphEndpoint")
    .option(
      "--catalog-lookup",
      `also grant ${GRAPH_PERMISSIONS.readAppCatalog} (only when TeamsAppCatalogId is not set)`,
    )
    .option("--run", "run the commands with az instead of printing them")
    .exitOverride();
  program.parse([...argv]);
  const options = program.opts<CliOptions>();

  let principal: Principal;
  if (options.principalId !== undefined) {
    if (options.identityName !== undefined)
      throw new Error("give --principal-id or --identity-name, not both");
    principal = { kind: "id", id: guid.parse(options.principalId).toLowerCase() };
  } else if (options.identityName !== undefined) {
    if (options.resourceGroup === undefined)
      throw new Error("--identity-name needs --resource-group");
    principal = {
      kind: "identity",
      name: azName.parse(options.identityName),
      resourceGroup: azName.parse(options.resourceGroup),
    };
  } else {
    throw new Error("give --principal-id <guid>, or --identity-name <name> --resource-group <rg>");
  }

  const endpoint = (options.graphEndpoint ?? GRAPH_CLOUDS[options.cloud]).replace(/\/+$/, "");
  const url = new URL(endpoint);
  if (url.protocol !== "https:" || url.pathname !== "/" || url.search !== "")
    throw new Error("--graph-endpoint must be an https origin, like https://graph.microsoft.com");

  return {
    inputs: {
      principal,
      graphEndpoint: url.origin,
      permissions: [
        ...REQUIRED_GRAPH_PERMISSIONS,
        ...(options.catalogLookup === true ? [GRAPH_PERMISSIONS.readAppCatalog] : []),
      ],
    },
    run: options.run === true,
  };
}

export function main(argv: readonly string[], az: AzRunner = realAz): string {
  const { inputs, run } = parseArgs(argv);
  if (!run) return planScript(inputs);
  return runGrant(inputs, az)
    .map((o) => `${o.result === "granted" ? "granted" : "already granted"} ${o.permission}`)
    .join("\n");
}

if (require.main === module) {
  try {
    console.log(main(process.argv));
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== "commander.helpDisplayed" && code !== "commander.version") {
      if (typeof code !== "string" || !code.startsWith("commander."))
        console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    }
  }
}
