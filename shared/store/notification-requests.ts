import { createHash } from "node:crypto";

import type { TableClient, TableEntity, TransactionAction } from "@azure/data-tables";

import { HeraldError } from "../errors";
import type { ActionResponses } from "../model/action-responses";
import type { CloudEvent } from "../model/cloud-event";
import type { NotificationMessage } from "../model/message";
import { clip, type FieldError } from "../validation/json-guard";
import { withoutUndefined, writtenRow } from "./entities";
import { joinTextParts, MAX_STRING_PROPERTY, storedErrors, textParts } from "./limits";
import {
  bodyRowKey,
  bodyRows,
  bodyRowText,
  INLINE_BODY_CHARS,
  MAX_BODY_ROWS,
} from "./request-body";
import { eventsJson, parseEvents } from "./stored-events";
import { encodeKey, isRestError, odata, type TableFactory, TABLES } from "./table-factory";

/**
 * One row per notification request, identified by (tenant, id): two tenants may use one id and
 * never touch each other's request. What the request asks (message, summary), the fingerprint
 * of its content (an idempotent replay has the same one), and how far it got. The delivery
 * ledger holds the per-recipient part.
 *
 *   Requests  PK = encodeKey(id)  RK = encodeKey(tenant, lower-cased) + "|" + encodeKey(id)
 *
 * The partition is the id, so a status query that names no tenant finds every tenant's request
 * with that id in one partition query. The row key repeats the id: a point read either way in
 * Azure, but Azurite (local runs, tests, the benchmark) indexes rows by row key, and a row key
 * shared by many rows made every read a scan. `encodeKey` escapes `|`, so the pair is injective.
 *
 * States: `received` (stored, the enqueue of its dispatch not confirmed), `queued`, `scheduled`
 * (waiting for `notBefore` on the queue), `dispatched` (every recipient has a ledger row and its
 * work is on the queue or done), `rejected` (invalid; `errors` says why), `failed` (its own work
 * was dead-lettered before every recipient had a row; `lastError` says why).
 */
export type RequestState =
  "received" | "queued" | "scheduled" | "dispatched" | "rejected" | "failed";

/** A request's identity. `tenantId` is "" for an invalid request whose tenant is unreadable. */
export interface RequestKey {
  readonly tenantId: string;
  readonly id: string;
}

export function requestPartitionKey(id: string): string {
  return encodeKey(id);
}

export function requestRowKey(key: RequestKey): string {
  return `${encodeKey(key.tenantId.toLowerCase())}|${encodeKey(key.id)}`;
}

export interface StoredRequest {
  readonly id: string;
  readonly state: RequestState;
  readonly source: "http" | "queue";
  /** As the request spelled it ("" when an invalid request named none readable). */
  readonly tenantId: string;
  /** Of recipients, message, summary and notBefore (see `requestFingerprint`). */
  readonly fingerprint?: string | undefined;
  readonly correlationId?: string | undefined;
  readonly message?: NotificationMessage | undefined;
  /** The answers per verb to the card's buttons (model/action-responses.ts). */
  readonly actions?: ActionResponses | undefined;
  readonly summary?: string | undefined;
  readonly notBefore?: string | undefined;
  /**
   * The content's revision: 1 as first accepted (undefined), then one more for each update
   * Herald accepts, in the order it accepts them (an ETag-conditional write of this row).
   */
  readonly revision?: number | undefined;
  /** When the request was recalled (final: no update after it). */
  readonly recalledAt?: string | undefined;
  /** The queue message id of the last update or recall accepted (a redelivery of it is a replay). */
  readonly lastChangeId?: string | undefined;
  /**
   * Ledger rows the request has when every recipient is recorded: known at intake when it names
   * users only, written at dispatch when team rosters are expanded.
   */
  readonly recipientCount?: number | undefined;
  /** Rows of the stored body (the claim check), so it is read in exactly that many point reads. */
  readonly bodyRows?: number | undefined;
  /** A small body, kept in the request row itself (no body rows, no transaction to write it). */
  readonly bodyJson?: string | undefined;
  readonly errors?: readonly FieldError[] | undefined;
  /** The last unexpected error while processing the request itself, with its delivery count. */
  readonly lastError?: string | undefined;
  readonly deliveryCount?: number | undefined;
  /**
   * The request's own events (accepted, rejected, completed), in order, each written by the
   * transition's conditional write (stored-events.ts). Change them only with `ifUnchanged`.
   */
  readonly events?: readonly CloudEvent[] | undefined;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly etag: string;
}

export type NewRequest = Omit<StoredRequest, "createdAt" | "updatedAt" | "etag">;
export type RequestPatch = Partial<
  Pick<
    StoredRequest,
    | "state"
    | "recipientCount"
    | "lastError"
    | "deliveryCount"
    | "notBefore"
    | "errors"
    | "message"
    | "summary"
    | "revision"
    | "recalledAt"
    | "lastChangeId"
    | "events"
  >
>;

type RequestEntity = {
  partitionKey: string;
  rowKey: string;
  id: string;
  state: string;
  /** Tells request rows from body rows in a partition query. */
  kind: "request";
  source: string;
  tenantId: string;
  fingerprint?: string;
  correlationId?: string;
  messageJson?: string;
  summary?: string;
  notBefore?: string;
  revision?: number;
  recalledAt?: string;
  lastChangeId?: string;
  recipientCount?: number;
  bodyRows?: number;
  bodyJson?: string;
  errorsJson?: string;
  lastError?: string;
  deliveryCount?: number;
  eventsJson?: string;
  createdAt: string;
  updatedAt: string;
};

/** The longest `lastError` kept. */
const MAX_LAST_ERROR = 1_000;

/**
 * A message may be 80 KB as UTF-8 JSON (the schema's limit), more than one Table string
 * property holds: it is stored in parts, `messageJson` then `messageJson1`, … (limits.ts).
 */
const messageParts = (json: string | undefined) => textParts("messageJson", json);
const joinMessageParts = (entity: Record<string, unknown>) => joinTextParts("messageJson", entity);
/** The answers to the card's buttons may be 80 KB too, stored the same way. */
const actionsParts = (json: string | undefined) => textParts("actionsJson", json);

/** Errors as stored: bounded in number and length, and within one string property. */
function errorsJson(errors: readonly FieldError[] | undefined): string | undefined {
  if (errors === undefined) return undefined;
  const kept = storedErrors(errors);
  let json = JSON.stringify(kept);
  while (json.length > MAX_STRING_PROPERTY && kept.length > 1) {
    kept.splice(kept.length - 2, 1);
    json = JSON.stringify(kept);
  }
  return json;
}

function parseJson<T>(text: string | undefined): T | undefined {
  return text === undefined || text === "" ? undefined : (JSON.parse(text) as T);
}

function fromEntity(entity: RequestEntity & { etag?: string }): StoredRequest {
  return withoutUndefined({
    id: entity.id,
    state: entity.state as RequestState,
    source: entity.source === "http" ? "http" : "queue",
    tenantId: entity.tenantId ?? "",
    fingerprint: entity.fingerprint,
    correlationId: entity.correlationId,
    message: parseJson<NotificationMessage>(
      joinMessageParts(entity as unknown as Record<string, unknown>),
    ),
    actions: parseJson<ActionResponses>(
      joinTextParts("actionsJson", entity as unknown as Record<string, unknown>),
    ),
    summary: entity.summary,
    notBefore: entity.notBefore,
    revision: entity.revision,
    recalledAt: entity.recalledAt,
    lastChangeId: entity.lastChangeId,
    recipientCount: entity.recipientCount,
    bodyRows: entity.bodyRows,
    bodyJson: entity.bodyJson,
    errors: parseJson<FieldError[]>(entity.errorsJson),
    lastError: entity.lastError,
    deliveryCount: entity.deliveryCount,
    events: parseEvents(entity.eventsJson),
    createdAt: entity.createdAt,
    updatedAt: entity.updatedAt,
    etag: entity.etag ?? "",
  });
}

function toEntity(request: Omit<StoredRequest, "etag">): RequestEntity {
  return withoutUndefined({
    ...messageParts(request.message === undefined ? undefined : JSON.stringify(request.message)),
    ...actionsParts(request.actions === undefined ? undefined : JSON.stringify(request.actions)),
    partitionKey: requestPartitionKey(request.id),
    rowKey: requestRowKey(request),
    id: request.id,
    kind: "request" as const,
    state: request.state,
    source: request.source,
    tenantId: request.tenantId,
    fingerprint: request.fingerprint,
    correlationId: request.correlationId,
    summary: request.summary,
    notBefore: request.notBefore,
    revision: request.revision,
    recalledAt: request.recalledAt,
    lastChangeId: request.lastChangeId,
    recipientCount: request.recipientCount,
    bodyRows: request.bodyRows,
    bodyJson: request.bodyJson,
    errorsJson: errorsJson(request.errors),
    lastError:
      request.lastError === undefined ? undefined : clip(request.lastError, MAX_LAST_ERROR),
    deliveryCount: request.deliveryCount,
    eventsJson: eventsJson(request.events),
    createdAt: request.createdAt,
    updatedAt: request.updatedAt,
  });
}

function conflictPrefix(key: RequestKey): string {
  return `${requestRowKey(key)}~conflict~`;
}

export type CreateOutcome =
  | { readonly created: true; readonly request: StoredRequest }
  /** The key exists: the stored row, left as it was (its body too). */
  | { readonly created: false; readonly request: StoredRequest };

export class NotificationRequestStore {
  constructor(
    private readonly tables: TableFactory,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async get(key: RequestKey): Promise<StoredRequest | undefined> {
    const table = await this.table();
    try {
      return fromEntity(
        await table.getEntity<RequestEntity>(requestPartitionKey(key.id), requestRowKey(key)),
      );
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  /** Every tenant's request with this id (one partition query; body rows are filtered out). */
  async findById(id: string): Promise<StoredRequest[]> {
    const table = await this.table();
    const found: StoredRequest[] = [];
    const pages = table
      .listEntities<RequestEntity>({
        queryOptions: {
          filter: odata`PartitionKey eq ${requestPartitionKey(id)} and kind eq 'request'`,
        },
      })
      .byPage({ maxPageSize: 100 });
    for await (const page of pages) for (const entity of page) found.push(fromEntity(entity));
    return found;
  }

  /** Inserts the request (a rejected one: no body) unless its key exists. */
  async create(request: NewRequest): Promise<CreateOutcome> {
    const table = await this.table();
    const stamp = this.clock().toISOString();
    const entity = toEntity({ ...request, createdAt: stamp, updatedAt: stamp });
    try {
      const response = await table.createEntity(entity);
      return { created: true, request: fromEntity({ ...entity, etag: response.etag ?? "" }) };
    } catch (error) {
      return this.existingOn409(error, request);
    }
  }

  /**
   * Inserts the request with its body (the recipients) in one transaction, unless its key
   * exists: the insert is conditional, so of two concurrent submissions exactly one is created.
   */
  async createWithBody(request: NewRequest, body: unknown): Promise<CreateOutcome> {
    const table = await this.table();
    const { entity, rows, stored } = this.withBody(request, body);
    try {
      if (rows.length === 0) {
        const response = await table.createEntity(entity);
        return { created: true, request: writtenRow(stored, response.etag) };
      }
      const response = await table.submitTransaction([
        ["create", entity],
        ...rows.map((row): TransactionAction => ["upsert", row as TableEntity, "Replace"]),
      ]);
      const etag = response.subResponses[0]?.etag ?? "";
      return { created: true, request: fromEntity({ ...entity, etag }) };
    } catch (error) {
      return this.existingOn409(error, request);
    }
  }

  /**
   * A rejected request resubmitted once fixed: the rejected row becomes the new request, with
   * its body, only if nobody changed it since it was read (ETag): of two concurrent fixes one
   * wins, the other gets "conflict" and reads again.
   */
  async replaceRejected(
    current: StoredRequest,
    request: NewRequest,
    body: unknown,
  ): Promise<StoredRequest | "conflict"> {
    const table = await this.table();
    const { entity, rows } = this.withBody(request, body, current.createdAt);
    try {
      if (rows.length === 0) {
        const response = await table.updateEntity(entity, "Replace", { etag: current.etag });
        return fromEntity({ ...entity, etag: response.etag ?? "" });
      }
      const response = await table.submitTransaction([
        ["update", entity, "Replace", { etag: current.etag }],
        ...rows.map((row): TransactionAction => ["upsert", row as TableEntity, "Replace"]),
      ]);
      return fromEntity({ ...entity, etag: response.subResponses[0]?.etag ?? "" });
    } catch (error) {
      if (isRestError(error, 412) || isRestError(error, 404)) return "conflict";
      throw error;
    }
  }

  /**
   * Records a submission of this key with different content, refused on the queue path where
   * nobody can be answered 409, so its sender sees it in the request's status. One row per
   * refused message (insert-only: concurrent conflicts never contend; a redelivered message is
   * one conflict).
   */
  async noteConflict(key: RequestKey, source: "http" | "queue", occurrence: string): Promise<void> {
    const table = await this.table();
    const suffix = createHash("sha256").update(occurrence).digest("base64url").slice(0, 22);
    try {
      await table.createEntity({
        partitionKey: requestPartitionKey(key.id),
        rowKey: `${conflictPrefix(key)}${suffix}`,
        kind: "conflict",
        source,
        at: this.clock().toISOString(),
      });
    } catch (error) {
      if (!isRestError(error, 409)) throw error;
    }
  }

  /** The refused submissions of this key with different content: how many, and the last. */
  async conflicts(
    key: RequestKey,
  ): Promise<{ count: number; lastAt?: string; lastSource?: "http" | "queue" } | undefined> {
    const table = await this.table();
    const prefix = conflictPrefix(key);
    const upper = `${prefix.slice(0, -1)}\u007f`;
    let count = 0;
    let last: { at: string; source: "http" | "queue" } | undefined;
    const rows = table.listEntities<{ at?: string; source?: string }>({
      queryOptions: {
        filter: odata`PartitionKey eq ${requestPartitionKey(key.id)} and RowKey ge ${prefix} and RowKey lt ${upper}`,
      },
    });
    for await (const row of rows) {
      count += 1;
      const at = typeof row.at === "string" ? row.at : "";
      if (last === undefined || at > last.at)
        last = { at, source: row.source === "http" ? "http" : "queue" };
    }
    if (count === 0) return undefined;
    return { count, ...(last !== undefined ? { lastAt: last.at, lastSource: last.source } : {}) };
  }

  /** The body stored with the request (undefined when none was: a rejected request). */
  async readBody(
    request: RequestKey & Pick<StoredRequest, "bodyRows" | "bodyJson">,
  ): Promise<unknown> {
    if (request.bodyJson !== undefined) return JSON.parse(request.bodyJson) as unknown;
    const table = await this.table();
    let json = "";
    const rows = Math.min(request.bodyRows ?? MAX_BODY_ROWS, MAX_BODY_ROWS);
    for (let row = 0; row < rows; row++) {
      let entity: Record<string, unknown>;
      try {
        entity = await table.getEntity<Record<string, unknown>>(
          requestPartitionKey(request.id),
          bodyRowKey(requestRowKey(request), row),
        );
      } catch (error) {
        if (isRestError(error, 404)) break;
        throw error;
      }
      json += bodyRowText(entity);
    }
    return json === "" ? undefined : (JSON.parse(json) as unknown);
  }

  /**
   * Changes the row. With `ifUnchanged`, only if nobody wrote it since it was read
   * ("conflict" otherwise); without, last writer wins on the patched fields.
   */
  async update(
    current: StoredRequest,
    patch: RequestPatch,
    options: { ifUnchanged?: boolean } = {},
  ): Promise<StoredRequest | "conflict"> {
    if (patch.events !== undefined && options.ifUnchanged !== true)
      throw new HeraldError("a request's events change only with ifUnchanged");
    const table = await this.table();
    const row = { ...current, ...patch, updatedAt: this.clock().toISOString() };
    const next = toEntity(row);
    try {
      const response =
        options.ifUnchanged === true
          ? await table.updateEntity(next, "Replace", { etag: current.etag })
          : await table.updateEntity(
              withoutUndefined({
                partitionKey: next.partitionKey,
                rowKey: next.rowKey,
                ...patch,
                ...(patch.lastError !== undefined ? { lastError: next.lastError } : {}),
                ...(patch.errors !== undefined ? { errorsJson: next.errorsJson } : {}),
                errors: undefined,
                // Events only ever change with ifUnchanged (a merge could lose a concurrent one).
                events: undefined,
                updatedAt: next.updatedAt,
              }),
              "Merge",
            );
      // Errors and lastError are stored bounded: the row read back says what was kept.
      return patch.errors !== undefined || patch.lastError !== undefined
        ? fromEntity({ ...next, etag: response.etag ?? "" })
        : writtenRow(row, response.etag);
    } catch (error) {
      if (isRestError(error, 412) || isRestError(error, 404)) return "conflict";
      throw error;
    }
  }

  private withBody(
    request: NewRequest,
    body: unknown,
    createdAt?: string,
  ): {
    entity: RequestEntity;
    rows: Record<string, unknown>[];
    stored: Omit<StoredRequest, "etag">;
  } {
    const stamp = this.clock().toISOString();
    const json = JSON.stringify(body);
    const inline = json.length <= INLINE_BODY_CHARS;
    const rows = inline
      ? []
      : bodyRows(requestPartitionKey(request.id), requestRowKey(request), json);
    const stored = {
      ...request,
      ...(inline ? { bodyJson: json } : { bodyRows: rows.length }),
      createdAt: createdAt ?? stamp,
      updatedAt: stamp,
    };
    return { entity: toEntity(stored), rows, stored };
  }

  private async existingOn409(error: unknown, key: RequestKey): Promise<CreateOutcome> {
    if (!isRestError(error, 409)) throw error;
    const existing = await this.get(key);
    if (existing === undefined) throw error;
    return { created: false, request: existing };
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.requests);
  }
}
