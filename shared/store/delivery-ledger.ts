import type { TableClient } from "@azure/data-tables";

import { recipientFromParts, recipientKey, recipientParts } from "../notifications/recipients";
import type { Recipient, RecipientKind } from "../notifications/schema";
import { withoutUndefined } from "./entities";
import { encodeKey, isRestError, odata, type TableFactory, TABLES } from "./table-factory";
import { mapLimited } from "./user-references";

/**
 * The delivery ledger: one row per request and recipient, in Table Storage.
 *
 *   Deliveries  PK = encodeKey(requestId)  RK = encodeKey(recipientKey)
 *
 * One partition per request, so a fan-out writes its rows in entity-group transactions of
 * 100 and the status API reads a request with one paged query.
 *
 * States: `pending` (waiting for a send, or for a retry), `sending` (claimed by one invocation
 * with an ETag-conditional update just before it calls Teams), then one of the final states
 * `sent`, `unreachable`, `failed`, `rejected`. A final row is never sent to again.
 */
export type DeliveryState = "pending" | "sending" | "sent" | "unreachable" | "failed" | "rejected";

export const FINAL_STATES: ReadonlySet<DeliveryState> = new Set([
  "sent",
  "unreachable",
  "failed",
  "rejected",
]);

export interface Delivery {
  readonly requestId: string;
  readonly recipientKey: string;
  readonly recipient: Recipient;
  readonly state: DeliveryState;
  /** Calls to Teams made for this delivery (one per claim). */
  readonly attempts: number;
  /** The Service Bus delivery count of the message that last worked on this row. */
  readonly deliveryCount?: number | undefined;
  readonly lastError?: string | undefined;
  readonly lastStatus?: number | undefined;
  readonly activityId?: string | undefined;
  readonly conversationId?: string | undefined;
  /** The user's `29:` id once the recipient was resolved. */
  readonly teamsUserId?: string | undefined;
  /** `<messageId>#<deliveryCount>` of the invocation holding the `sending` claim. */
  readonly claimedBy?: string | undefined;
  readonly claimExpiresAt?: string | undefined;
  readonly nextAttemptAt?: string | undefined;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly completedAt?: string | undefined;
  /** The row's ETag: updates are conditional on it. */
  readonly etag: string;
}

/** Fields an update may change. `undefined` clears a field. */
export type DeliveryPatch = Partial<
  Pick<
    Delivery,
    | "state"
    | "attempts"
    | "deliveryCount"
    | "lastError"
    | "lastStatus"
    | "activityId"
    | "conversationId"
    | "teamsUserId"
    | "claimedBy"
    | "claimExpiresAt"
    | "nextAttemptAt"
    | "completedAt"
  >
>;

type DeliveryEntity = {
  partitionKey: string;
  rowKey: string;
  requestId: string;
  recipientKind: string;
  recipientValue: string;
  state: string;
  attempts: number;
  deliveryCount?: number;
  lastError?: string;
  lastStatus?: number;
  activityId?: string;
  conversationId?: string;
  teamsUserId?: string;
  claimedBy?: string;
  claimExpiresAt?: string;
  nextAttemptAt?: string;
  createdAt: string;
  updatedAt: string;
  completedAt?: string;
};

export interface NewDelivery {
  readonly recipientKey: string;
  readonly recipient: Recipient;
  /** Default `pending`; a final state records an outcome known up front (unknown team…). */
  readonly state?: DeliveryState;
  readonly lastError?: string;
}

const TRANSACTION_SIZE = 100;
const WRITE_CONCURRENCY = 4;

export function deliveryPartitionKey(requestId: string): string {
  return encodeKey(requestId);
}

function fromEntity(entity: DeliveryEntity & { etag?: string }): Delivery {
  const recipient = recipientFromParts(
    entity.recipientKind as RecipientKind,
    entity.recipientValue,
  );
  return withoutUndefined({
    requestId: entity.requestId,
    recipientKey: recipientKey(recipient),
    recipient,
    state: entity.state as DeliveryState,
    attempts: entity.attempts ?? 0,
    deliveryCount: entity.deliveryCount,
    lastError: entity.lastError,
    lastStatus: entity.lastStatus,
    activityId: entity.activityId,
    conversationId: entity.conversationId,
    teamsUserId: entity.teamsUserId,
    claimedBy: entity.claimedBy,
    claimExpiresAt: entity.claimExpiresAt,
    nextAttemptAt: entity.nextAttemptAt,
    createdAt: entity.createdAt,
    updatedAt: entity.updatedAt,
    completedAt: entity.completedAt,
    etag: entity.etag ?? "",
  });
}

function toEntity(delivery: Omit<Delivery, "etag">): DeliveryEntity {
  const { kind, value } = recipientParts(delivery.recipient);
  return withoutUndefined({
    partitionKey: deliveryPartitionKey(delivery.requestId),
    rowKey: encodeKey(delivery.recipientKey),
    requestId: delivery.requestId,
    recipientKind: kind,
    recipientValue: value,
    state: delivery.state,
    attempts: delivery.attempts,
    deliveryCount: delivery.deliveryCount,
    lastError: delivery.lastError,
    lastStatus: delivery.lastStatus,
    activityId: delivery.activityId,
    conversationId: delivery.conversationId,
    teamsUserId: delivery.teamsUserId,
    claimedBy: delivery.claimedBy,
    claimExpiresAt: delivery.claimExpiresAt,
    nextAttemptAt: delivery.nextAttemptAt,
    createdAt: delivery.createdAt,
    updatedAt: delivery.updatedAt,
    completedAt: delivery.completedAt,
  });
}

export class DeliveryLedger {
  constructor(
    private readonly tables: TableFactory,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async get(requestId: string, recipientKey: string): Promise<Delivery | undefined> {
    const table = await this.table();
    try {
      const entity = await table.getEntity<DeliveryEntity>(
        deliveryPartitionKey(requestId),
        encodeKey(recipientKey),
      );
      return fromEntity(entity);
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  /**
   * The row, created as `pending` if the request has none for this recipient yet. With
   * `likelyNew` (a single-recipient request delivered inline) the create is tried first: one
   * round trip instead of a miss, a create and a read.
   */
  async ensure(
    requestId: string,
    recipientKey: string,
    recipient: Recipient,
    options: { likelyNew?: boolean } = {},
  ): Promise<Delivery> {
    if (options.likelyNew !== true) {
      const existing = await this.get(requestId, recipientKey);
      if (existing !== undefined) return existing;
    }
    const table = await this.table();
    const stamp = this.clock().toISOString();
    const entity = toEntity({
      requestId,
      recipientKey,
      recipient,
      state: "pending",
      attempts: 0,
      createdAt: stamp,
      updatedAt: stamp,
    });
    try {
      const response = await table.createEntity(entity);
      return fromEntity({ ...entity, etag: response.etag ?? "" });
    } catch (error) {
      if (!isRestError(error, 409)) throw error;
    }
    const raced = await this.get(requestId, recipientKey);
    if (raced === undefined) throw new Error(`delivery row ${requestId}/${recipientKey} vanished`);
    return raced;
  }

  /**
   * Creates rows in entity-group transactions of 100 (one partition per request). Rows that
   * already exist are left as they are: a transaction that meets one (409) is redone row by
   * row. Returns how many rows this call created.
   */
  async create(requestId: string, rows: readonly NewDelivery[]): Promise<number> {
    if (rows.length === 0) return 0;
    const table = await this.table();
    const stamp = this.clock().toISOString();
    const entities = rows.map((row) =>
      toEntity({
        requestId,
        recipientKey: row.recipientKey,
        recipient: row.recipient,
        state: row.state ?? "pending",
        attempts: 0,
        lastError: row.lastError,
        createdAt: stamp,
        updatedAt: stamp,
        completedAt: row.state !== undefined && FINAL_STATES.has(row.state) ? stamp : undefined,
      }),
    );
    const chunks: DeliveryEntity[][] = [];
    for (let i = 0; i < entities.length; i += TRANSACTION_SIZE)
      chunks.push(entities.slice(i, i + TRANSACTION_SIZE));
    const counts = await mapLimited(chunks, WRITE_CONCURRENCY, async (chunk) => {
      try {
        await table.submitTransaction(chunk.map((e) => ["create", e]));
        return chunk.length;
      } catch (error) {
        if (!isRestError(error, 409) && !isRestError(error, 400)) throw error;
        let created = 0;
        for (const entity of chunk) {
          try {
            await table.createEntity(entity);
            created += 1;
          } catch (inner) {
            if (!isRestError(inner, 409)) throw inner;
          }
        }
        return created;
      }
    });
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Applies `patch` if the row is unchanged since it was read (ETag); "conflict" when another
   * invocation changed it first (read it again and decide).
   */
  async update(current: Delivery, patch: DeliveryPatch): Promise<Delivery | "conflict"> {
    const table = await this.table();
    const next = { ...current, ...patch, updatedAt: this.clock().toISOString() };
    const entity = toEntity(next);
    try {
      const response = await table.updateEntity(entity, "Replace", { etag: current.etag });
      return fromEntity({ ...entity, etag: response.etag ?? "" });
    } catch (error) {
      if (isRestError(error, 412) || isRestError(error, 404)) return "conflict";
      throw error;
    }
  }

  /** Every row of a request, paged from the table. */
  async *list(requestId: string): AsyncIterable<Delivery> {
    const table = await this.table();
    const pages = table
      .listEntities<DeliveryEntity>({
        queryOptions: { filter: odata`PartitionKey eq ${deliveryPartitionKey(requestId)}` },
      })
      .byPage({ maxPageSize: 1000 });
    for await (const page of pages) {
      for (const entity of page) yield fromEntity(entity);
    }
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.deliveries);
  }
}
