import type { Node } from "web-tree-sitter";

import { property, stringLiteral } from "./bicep";
import type { BicepProject, Entry, Expr } from "./bicep-project";

/**
 * What the drift and template tests read out of `infra/`: the Function App's app settings,
 * resources by type, and role assignments as main.bicep passes them to the modules.
 */

/** The built-in roles Herald uses, by their real ids (the same in every tenant). */
export const BUILT_IN_ROLES = {
  storageTableDataContributor: "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
  storageBlobDataOwner: "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
  serviceBusDataReceiver: "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
  serviceBusDataSender: "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
  /** The Service Bus trigger's target-based scaling reads queue length with the Manage right. */
  serviceBusDataOwner: "090c5cfd-751d-490a-894a-3ce6f1109419",
  monitoringMetricsPublisher: "3913510d-42f4-4e42-8a64-420c390055eb",
} as const;

export function resourcesOfType(project: BicepProject, file: string, typePrefix: string) {
  const doc = project.module(project.symbolFor(file));
  return doc
    .all("resource")
    .filter((r) => doc.targetOf(r).startsWith(`${typePrefix}@`))
    .map((r) => {
      const body = doc.bodyOf(r);
      if (body === undefined) throw new Error(`${doc.where(r.node)}: resource without a body`);
      return { doc, declaration: r, body };
    });
}

export function resourceOfType(project: BicepProject, file: string, typePrefix: string) {
  const found = resourcesOfType(project, file, typePrefix);
  if (found.length !== 1) {
    throw new Error(`${file}: expected one ${typePrefix}, found ${found.length}`);
  }
  return found[0]!;
}

/** Value at a dotted path (`properties.siteConfig.ftpsState`) of an object node. */
export function at(object: Node, dotted: string): Node | undefined {
  let node: Node | undefined = object;
  for (const key of dotted.split(".")) {
    if (node?.type !== "object") return undefined;
    node = property(node, key);
  }
  return node;
}

/** App settings of the Function App: every key of its `sites/config` `appsettings` resource. */
export function appSettings(project: BicepProject): Entry[] {
  const candidates = resourcesOfType(project, "function-app.bicep", "Microsoft.Web/sites/config");
  const appsettings = candidates.find((r) => {
    const name = property(r.body, "name");
    return name !== undefined && stringLiteral(name) === "appsettings";
  });
  if (appsettings === undefined) throw new Error("function-app.bicep: no appsettings resource");
  const properties = property(appsettings.body, "properties");
  if (properties === undefined) throw new Error("appsettings resource without properties");
  return project.entries({ doc: appsettings.doc, node: properties });
}

export interface RoleGrant {
  module: string;
  /** The module parameter that carried the grant (for service-bus.bicep: which queue). */
  param: string;
  principal: string;
  roleDefinitionId: string | undefined;
  conditional: boolean;
  where: string;
}

/** Role assignments main.bicep passes to a module's roleAssignment-typed parameter. */
export function roleGrants(project: BicepProject, file: string, paramName: string): RoleGrant[] {
  const symbol = project.symbolFor(file);
  const argument = project.argumentFor(project.module(symbol), paramName);
  if (argument === undefined) return [];
  return project.items(argument).map(({ item, conditional }) => {
    const keys = project.entries(item);
    const principal = keys.find((k) => k.name === "principalId");
    const role = keys.find((k) => k.name === "roleDefinitionId");
    return {
      module: symbol,
      param: paramName,
      principal: principal === undefined ? "" : principal.value.node.text,
      roleDefinitionId: role === undefined ? undefined : asString(project.literal(role.value)),
      conditional,
      where: item.doc.where(item.node),
    };
  });
}

/** Source text of an expression after following variables (`identity.outputs.clientId`). */
export function textOf(project: BicepProject, expr: Expr): string {
  return project.resolve(expr).node.text;
}

function asString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}
