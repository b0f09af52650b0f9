import { createHash } from "node:crypto";

import type {
  RestError,
  TableClient,
  TableServiceClient,
  TableServiceClientOptions,
} from "@azure/data-tables";
import type { TokenCredential } from "@azure/identity";

import { MissingTableError } from "../errors";
import { MAX_ENCODED_KEY_LENGTH } from "./limits";

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
  relays: "Relays",
  requests: "Requests",
  deliveries: "Deliveries",
  deadLetters: "DeadLetters",
  /** Sent, not yet read deliveries by user (read receipts). */
  unread: "Unread",
  /** Webhook cursors (events posted per row) and the webhook's state. */
  webhooks: "Webhooks",
} as const;

export type TableName = (typeof TABLES)[keyof typeof TABLES];

/** How the Table service is reached: settings parse into this (shared/config.ts). */
export type TableConnection =
  | { kind: "connectionString"; connectionString: string }
  | { kind: "identity"; endpoint: string; clientId?: string };

export interface TableConfig {
  readonly tables: TableConnection;
  readonly tableNamePrefix: string;
}

function credentialFor(clientId: string | undefined): TokenCredential {
  const identity = identitySdk();
  return clientId !== undefined
    ? new identity.ManagedIdentityCredential({ clientId })
    : new identity.DefaultAzureCredential();
}

export interface TableFactoryOptions {
  /** Create each table the first time it is used; default: `createsTablesOnFirstUse`. */
  readonly createTables?: boolean;
}

/**
 * Whether tables reached this way are created on first use: for a connection string (Azurite,
 * or an account set up by hand), so a fresh one works without a provisioning step. On a managed
 * identity the account is the one `infra/` deploys, and Bicep creates every table in `TABLES`
 * (test/infra/settings-drift.test.ts keeps the two lists equal): a create there would cost each
 * cold instance one round trip per table on its first invocations, and log one 409 dependency
 * failure per table.
 */
export function createsTablesOnFirstUse(connection: TableConnection): boolean {
  return connection.kind === "connectionString";
}

/** Hands out one TableClient per table, creating the table on first use where it may be missing. */
export class TableFactory {
  private readonly clients = new Map<string, Promise<TableClient>>();
  private readonly credential: TokenCredential | undefined;
  private readonly createTables: boolean;

  constructor(
    private readonly config: TableConfig,
    options: TableFactoryOptions = {},
  ) {
    this.credential =
      config.tables.kind === "identity" ? credentialFor(config.tables.clientId) : undefined;
    this.createTables = options.createTables ?? createsTablesOnFirstUse(config.tables);
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
    const options: TableServiceClientOptions = this.createTables
      ? {}
      : { additionalPolicies: [{ policy: missingTablePolicy(tableName), position: "perCall" }] };
    const client =
      tables.kind === "connectionString"
        ? TableClient.fromConnectionString(tables.connectionString, tableName, {
            ...options,
            allowInsecureConnection: isLocal(tables.connectionString),
          })
        : new TableClient(tables.endpoint, tableName, this.credential!, options);
    if (this.createTables) await client.createTable();
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

type PipelinePolicy = NonNullable<
  TableServiceClientOptions["additionalPolicies"]
>[number]["policy"];

const TABLE_NOT_FOUND = "TableNotFound";

/**
 * On a table Herald does not create, a missing table is a deployment error, never "no such
 * row": every store reads a plain 404 as an absent entity, and a missing table would otherwise
 * answer "not found" to a status read and "conflict" to a conditional write.
 */
function missingTablePolicy(tableName: string): PipelinePolicy {
  return {
    name: "heraldMissingTable",
    async sendRequest(request, next) {
      // The SDK's deserialization throws an error answer as a RestError before a response.
      try {
        return await next(request);
      } catch (error) {
        if (!isRestError(error, 404, TABLE_NOT_FOUND)) throw error;
        throw new MissingTableError(
          `Table ${tableName} does not exist. On a managed identity Herald does not create tables: deploy infra/ (its Bicep creates every table Herald uses, with TableNamePrefix) or create it, then retry`,
        );
      }
    },
  };
}

/** The Table service's error codes on an answer: in the OData body, the header, the SDK's own. */
function errorCodes(error: RestError): (string | undefined)[] {
  const details = error.details as { odataError?: { code?: string } } | undefined;
  return [details?.odataError?.code, error.response?.headers.get("x-ms-error-code"), error.code];
}

/**
 * True for a RestError with this HTTP status (and, if given, this Table service error code).
 * A 404 for a missing table is not the 404 of a missing entity, which is what callers that ask
 * for a bare 404 mean (a transaction's answer to a missing table comes this way).
 */
export function isRestError(error: unknown, status: number, code?: string): boolean {
  if (!(error instanceof tablesSdk().RestError) || error.statusCode !== status) return false;
  const codes = errorCodes(error);
  if (code === undefined) return !(status === 404 && codes.includes(TABLE_NOT_FOUND));
  return codes.includes(code);
}

export { MAX_ENCODED_KEY_LENGTH };

/** Readable head kept in front of the hash when a value's encoding is too long. */
const HASHED_HEAD_LENGTH = MAX_ENCODED_KEY_LENGTH - 2 - 64;

/**
 * A Table key part for any string: total, injective and bounded.
 *
 * - Table keys may not contain / \ # ? or control characters: every character outside
 *   `encodeURIComponent`'s unreserved set becomes `~XX` per UTF-8 byte (hex upper-case), and
 *   `~` itself is escaped (`~7E`), so no two values share an encoding (the old form kept `~`
 *   as is, so `%41` and `~41` collided).
 * - Total: a lone UTF-16 surrogate, which `encodeURIComponent` throws on, becomes `~uXXXX`
 *   (`~u` never comes out of the UTF-8 escape, so this stays injective).
 * - Bounded: an encoding longer than `MAX_ENCODED_KEY_LENGTH` (one character may take up to
 *   nine: `~F0~9F~98~80` for a 4-byte character) is cut to a readable head plus `~h` and the
 *   SHA-256 of the whole encoding. `~h` marks it, so it cannot equal a short encoding.
 *
 * Compatibility: values without `~` whose encoding fits keep the key the old encoding gave
 * them (`encodeURIComponent` with `%` → `~`), so existing rows are still found. Values that
 * contain `~`, or whose encoding was longer than 255 characters, get a new key; the old one
 * was ambiguous or did not fit Azurite at all. Such rows are re-learned (a user's next
 * activity or roster sync writes the reference under its new key); see docs/notifications.md.
 */
export function encodeKey(value: string): string {
  // Most keys (GUIDs, request ids) need no escape: the loop below would give them back as is.
  if (value.length <= MAX_ENCODED_KEY_LENGTH && PLAIN_KEY.test(value)) return value;
  let encoded = "";
  let run = 0; // start of the current run of well-formed text
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0xd800 || code > 0xdfff) continue;
    const next = i + 1 < value.length ? value.charCodeAt(i + 1) : 0;
    if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      i++; // a well-formed pair
      continue;
    }
    encoded += `${escapeWellFormed(value.slice(run, i))}~u${code.toString(16).toUpperCase()}`;
    run = i + 1;
  }
  encoded += escapeWellFormed(value.slice(run));
  if (encoded.length <= MAX_ENCODED_KEY_LENGTH) return encoded;
  const head = encoded.slice(0, HASHED_HEAD_LENGTH).replace(/~[0-9A-Fu]{0,4}$/, "");
  return `${head}~h${createHash("sha256").update(encoded).digest("hex")}`;
}

/** `encodeURIComponent`'s unreserved characters, less `~` (which the encoding escapes). */
const PLAIN_KEY = /^[A-Za-z0-9\-_.!*'()]*$/;

function escapeWellFormed(text: string): string {
  return encodeURIComponent(text).replace(/~/g, "%7E").replace(/%/g, "~");
}
