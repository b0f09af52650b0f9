import type { TableClient, TableEntity, TransactionAction } from "@azure/data-tables";

import type { FieldError, NotificationMessage } from "../notifications/schema";
import { clip } from "../validation/json-guard";
import { withoutUndefined } from "./entities";
import { MAX_STRING_PROPERTY, storedErrors } from "./limits";
import { encodeKey, isRestError, type TableFactory, TABLES } from "./table-factory";

/**
 * One row per notification request id: what the request asks (message, summary, tenant) and
 * how far it got. The delivery ledger holds the per-recipient part.
 *
 *   Requests  PK = RK = encodeKey(id)
 *
 * The row key repeats the id: a point read either way in Azure, but Azurite (local runs, tests,
 * the benchmark) indexes rows by row key, and a constant one made every read a scan.
 *
 * States: `received` (HTTP accepted it; the enqueue is not confirmed yet), `queued`,
 * `scheduled` (waiting for `notBefore` on the queue), `dispatched` (every recipient has a
 * ledger row and its work is on the queue or done), `rejected` (invalid; `errors` says why).
 * The message is stored once here, so fanned-out work items stay small.
 */
export type RequestState = "received" | "queued" | "scheduled" | "dispatched" | "rejected";

export interface StoredRequest {
  readonly id: string;
  readonly state: RequestState;
  readonly source: "http" | "queue";
  readonly tenantId?: string | undefined;
  readonly correlationId?: string | undefined;
  readonly message?: NotificationMessage | undefined;
  readonly summary?: string | undefined;
  readonly notBefore?: string | undefined;
  /** Ledger rows written at dispatch (team rosters expanded). */
  readonly recipientCount?: number | undefined;
  /** Rows of the stored body (the claim check), so it is read in exactly that many point reads. */
  readonly bodyRows?: number | undefined;
  readonly errors?: readonly FieldError[] | undefined;
  /** The last unexpected error while processing the request itself, with its delivery count. */
  readonly lastError?: string | undefined;
  readonly deliveryCount?: number | undefined;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly etag: string;
}

export type NewRequest = Omit<StoredRequest, "createdAt" | "updatedAt" | "etag">;
export type RequestPatch = Partial<
  Pick<StoredRequest, "state" | "recipientCount" | "lastError" | "deliveryCount" | "notBefore">
>;

type RequestEntity = {
  partitionKey: string;
  rowKey: string;
  id: string;
  state: string;
  source: string;
  tenantId?: string;
  correlationId?: string;
  messageJson?: string;
  summary?: string;
  notBefore?: string;
  recipientCount?: number;
  bodyRows?: number;
  errorsJson?: string;
  lastError?: string;
  deliveryCount?: number;
  createdAt: string;
  updatedAt: string;
};

/** The longest `lastError` kept. */
const MAX_LAST_ERROR = 1_000;

/**
 * A message may be 80 KB as UTF-8 JSON (the schema's limit), more than one Table string
 * property holds (32 K UTF-16 code units): it is stored in parts, `messageJson` then
 * `messageJson1`, `messageJson2`, … (an entity holds 1 MiB). Rows written before hold one part.
 */
function messageParts(json: string | undefined): Record<string, string> {
  if (json === undefined) return {};
  const parts: Record<string, string> = {};
  for (let i = 0, at = 0; at < json.length; i++, at += MAX_STRING_PROPERTY)
    parts[i === 0 ? "messageJson" : `messageJson${i}`] = json.slice(at, at + MAX_STRING_PROPERTY);
  return parts;
}

function joinMessageParts(entity: Record<string, unknown>): string | undefined {
  const first = entity.messageJson;
  if (typeof first !== "string") return undefined;
  let json = first;
  for (let i = 1; typeof entity[`messageJson${i}`] === "string"; i++)
    json += entity[`messageJson${i}`] as string;
  return json;
}

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
    tenantId: entity.tenantId,
    correlationId: entity.correlationId,
    message: parseJson<NotificationMessage>(
      joinMessageParts(entity as unknown as Record<string, unknown>),
    ),
    summary: entity.summary,
    notBefore: entity.notBefore,
    recipientCount: entity.recipientCount,
    bodyRows: entity.bodyRows,
    errors: parseJson<FieldError[]>(entity.errorsJson),
    lastError: entity.lastError,
    deliveryCount: entity.deliveryCount,
    createdAt: entity.createdAt,
    updatedAt: entity.updatedAt,
    etag: entity.etag ?? "",
  });
}

function toEntity(request: Omit<StoredRequest, "etag">): RequestEntity {
  return withoutUndefined({
    ...messageParts(request.message === undefined ? undefined : JSON.stringify(request.message)),
    partitionKey: encodeKey(request.id),
    rowKey: encodeKey(request.id),
    id: request.id,
    state: request.state,
    source: request.source,
    tenantId: request.tenantId,
    correlationId: request.correlationId,
    summary: request.summary,
    notBefore: request.notBefore,
    recipientCount: request.recipientCount,
    bodyRows: request.bodyRows,
    errorsJson: errorsJson(request.errors),
    lastError:
      request.lastError === undefined ? undefined : clip(request.lastError, MAX_LAST_ERROR),
    deliveryCount: request.deliveryCount,
    createdAt: request.createdAt,
    updatedAt: request.updatedAt,
  });
}

/**
 * The claim check: a request's recipients are stored beside its row before a reference to it is
 * queued, so a request of any size the schema allows (10,000 recipients is about 550 KB) never
 * has to fit one queue message (Service Bus Standard: 256 KB). Table Storage caps a string
 * property at 64 KiB (32 K UTF-16 characters) and an entity at 1 MiB, so the JSON is cut into
 * properties of `CHUNK_CHARS` characters, `CHUNKS_PER_ROW` to a row, rows keyed `<rk>~body~<n>`
 * in the request's own partition: one transaction writes them with the request row.
 */
const CHUNK_CHARS = 30_000;
const CHUNKS_PER_ROW = 15;
/** Azure Table transactions: at most 100 operations in one partition, 4 MiB. */
const MAX_BODY_ROWS = 8;

function bodyRowKey(id: string, row: number): string {
  return `${encodeKey(id)}~body~${String(row).padStart(3, "0")}`;
}

function bodyRows(id: string, json: string): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  const rowChars = CHUNK_CHARS * CHUNKS_PER_ROW;
  for (let start = 0, row = 0; start < json.length || row === 0; start += rowChars, row++) {
    const part = json.slice(start, start + rowChars);
    const entity: Record<string, unknown> = {
      partitionKey: encodeKey(id),
      rowKey: bodyRowKey(id, row),
      chunks: Math.ceil(part.length / CHUNK_CHARS),
    };
    for (let c = 0; c * CHUNK_CHARS < part.length; c++)
      entity[`c${c}`] = part.slice(c * CHUNK_CHARS, (c + 1) * CHUNK_CHARS);
    rows.push(entity);
  }
  if (rows.length > MAX_BODY_ROWS)
    throw new Error(`request body of ${json.length} characters is too large to store`);
  return rows;
}

export class NotificationRequestStore {
  constructor(
    private readonly tables: TableFactory,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async get(id: string): Promise<StoredRequest | undefined> {
    const table = await this.table();
    try {
      return fromEntity(await table.getEntity<RequestEntity>(encodeKey(id), encodeKey(id)));
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  /** Inserts the request unless its id exists: `created` false returns the existing row. */
  async create(request: NewRequest): Promise<{ created: boolean; request: StoredRequest }> {
    const table = await this.table();
    const stamp = this.clock().toISOString();
    const entity = toEntity({ ...request, createdAt: stamp, updatedAt: stamp });
    try {
      const response = await table.createEntity(entity);
      return { created: true, request: fromEntity({ ...entity, etag: response.etag ?? "" }) };
    } catch (error) {
      if (!isRestError(error, 409)) throw error;
      const existing = await this.get(request.id);
      if (existing === undefined) throw error;
      return { created: false, request: existing };
    }
  }

  /**
   * Inserts the request with its body (the recipients) in one transaction, unless its id exists:
   * `created` false returns the existing row and leaves its body as it was.
   */
  async createWithBody(
    request: NewRequest,
    body: unknown,
  ): Promise<{ created: boolean; request: StoredRequest }> {
    const table = await this.table();
    const stamp = this.clock().toISOString();
    const json = JSON.stringify(body);
    const rows = bodyRows(request.id, json);
    const entity = toEntity({
      ...request,
      bodyRows: rows.length,
      createdAt: stamp,
      updatedAt: stamp,
    });
    try {
      const response = await table.submitTransaction([
        ["create", entity],
        ...rows.map((row): TransactionAction => ["upsert", row as TableEntity, "Replace"]),
      ]);
      const etag = response.subResponses[0]?.etag ?? "";
      return { created: true, request: fromEntity({ ...entity, etag }) };
    } catch (error) {
      if (!isRestError(error, 409)) throw error;
      const existing = await this.get(request.id);
      if (existing === undefined) throw error;
      return { created: false, request: existing };
    }
  }

  /** The body stored with the request (undefined when none was: a rejected request). */
  async readBody(request: Pick<StoredRequest, "id" | "bodyRows">): Promise<unknown> {
    const table = await this.table();
    const id = request.id;
    let json = "";
    const rows = Math.min(request.bodyRows ?? MAX_BODY_ROWS, MAX_BODY_ROWS);
    for (let row = 0; row < rows; row++) {
      let entity: Record<string, unknown>;
      try {
        entity = await table.getEntity<Record<string, unknown>>(encodeKey(id), bodyRowKey(id, row));
      } catch (error) {
        if (isRestError(error, 404)) break;
        throw error;
      }
      const chunks = Number(entity.chunks);
      for (let c = 0; c < chunks; c++) {
        const chunk = entity[`c${c}`];
        json += typeof chunk === "string" ? chunk : "";
      }
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
    const table = await this.table();
    const next = toEntity({ ...current, ...patch, updatedAt: this.clock().toISOString() });
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
                updatedAt: next.updatedAt,
              }),
              "Merge",
            );
      return fromEntity({ ...next, etag: response.etag ?? "" });
    } catch (error) {
      if (isRestError(error, 412) || isRestError(error, 404)) return "conflict";
      throw error;
    }
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.requests);
  }
}
