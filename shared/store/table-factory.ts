import type { TableClient, TableServiceClient } from "@azure/data-tables";
import type { TokenCredential } from "@azure/identity";

import type { Config } from "../config";

/*
 * The Tables SDK and @azure/identity are required on first use, not at import: together they
 * cost ~100 ms of every function's cold start (bench/: "Cold start"), and a function only
 * needs them once it touches a table.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- lazy: see above */
const tablesSdk = () => require("@azure/data-tables") as typeof import("@azure/data-tables");
const identitySdk = () => require("@azure/identity") as typeof import("@azure/identity");
/* eslint-enable @typescript-eslint/no-require-imports */

/** The Tables SDK's `odata` filter template (escapes the values). */
export function odata(strings: TemplateStringsArray, ...values: unknown[]): string {
  return tablesSdk().odata(strings, ...values);
}

/** Logical table names; the physical name is `${TableNamePrefix}${name}`. */
export const TABLES = {
  users: "Users",
  userIndex: "UserIndex",
  teams: "Teams",
  teamMembers: "TeamMembers",
  welcomes: "Welcomes",
  requests: "Requests",
  deliveries: "Deliveries",
} as const;

export type TableName = (typeof TABLES)[keyof typeof TABLES];

export type TableConfig = Pick<Config, "tables" | "tableNamePrefix">;

function credentialFor(clientId: string | undefined): TokenCredential {
  const identity = identitySdk();
  return clientId !== undefined
    ? new identity.ManagedIdentityCredential({ clientId })
    : new identity.DefaultAzureCredential();
}

/**
 * Hands out one TableClient per table and creates each table the first time it is used,
 * so a fresh Azurite (local) works without a provisioning step; in Azure, Bicep creates them.
 */
export class TableFactory {
  private readonly clients = new Map<string, Promise<TableClient>>();
  private readonly credential: TokenCredential | undefined;

  constructor(private readonly config: TableConfig) {
    this.credential =
      config.tables.kind === "identity" ? credentialFor(config.tables.clientId) : undefined;
  }

  physicalName(name: TableName): string {
    return `${this.config.tableNamePrefix}${name}`;
  }

  table(name: TableName): Promise<TableClient> {
    let client = this.clients.get(name);
    if (client === undefined) {
      client = this.open(this.physicalName(name));
      this.clients.set(name, client);
      client.catch(() => this.clients.delete(name));
    }
    return client;
  }

  private async open(tableName: string): Promise<TableClient> {
    const tables = this.config.tables;
    const { TableClient } = tablesSdk();
    const client =
      tables.kind === "connectionString"
        ? TableClient.fromConnectionString(tables.connectionString, tableName, {
            allowInsecureConnection: isLocal(tables.connectionString),
          })
        : new TableClient(tables.endpoint, tableName, this.credential!);
    await client.createTable();
    return client;
  }

  serviceClient(): TableServiceClient {
    const tables = this.config.tables;
    const { TableServiceClient } = tablesSdk();
    return tables.kind === "connectionString"
      ? TableServiceClient.fromConnectionString(tables.connectionString, {
          allowInsecureConnection: isLocal(tables.connectionString),
        })
      : new TableServiceClient(tables.endpoint, this.credential!);
  }
}

function isLocal(connectionString: string): boolean {
  return /(127\.0\.0\.1|localhost)/.test(connectionString);
}

/** True for a RestError with this HTTP status (and, if given, this Table service error code). */
export function isRestError(error: unknown, status: number, code?: string): boolean {
  if (!(error instanceof tablesSdk().RestError) || error.statusCode !== status) return false;
  if (code === undefined) return true;
  const details = error.details as { odataError?: { code?: string } } | undefined;
  return details?.odataError?.code === code || error.code === code;
}

/**
 * Table keys may not contain / \ # ? or control characters; Teams ids contain ':' and '@'
 * which are fine, but UPNs and ids from outside are encoded to be safe and reversible.
 */
export function encodeKey(value: string): string {
  return encodeURIComponent(value).replace(/%/g, "~");
}
