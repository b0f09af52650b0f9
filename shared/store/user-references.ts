import type { TableClient, TableEntity } from "@azure/data-tables";

import { chunks, mapLimited } from "../util/collections";
import { clip } from "../validation/json-guard";
import { readEntity, type StoredEntity, updateWithEtag } from "./entities";
import { isRestError, odata, type TableFactory, TABLES } from "./table-factory";
import {
  aadIndexKey,
  aadIndexRow,
  indexRowsFor,
  merge,
  observedTime,
  referenceFromIndexRow,
  sameText,
  toReference,
  upnIndexKey,
  type UserEntity,
  type UserObservation,
  userPartitionKey,
  type UserReference,
  userRowKey,
  type UserStatus,
} from "./user-observation";

export type { LearnedFrom, UserObservation, UserReference, UserStatus } from "./user-observation";

/**
 * User references: what Herald knows about a Teams user so it can message them 1:1.
 *
 * Key design (every lookup is one or two point reads, never a scan):
 *
 *   Users      PK = encodeKey(tenantId, lower-cased)  RK = encodeKey(teamsUserId)        -> the reference
 *   UserIndex  PK = encodeKey(tenantId, lower-cased)  RK = "aad|" + encodeKey(aadObjectId, lower-cased) -> { teamsUserId }
 *                                                     RK = "upn|" + encodeKey(UPN, lower-cased)         -> { teamsUserId }
 *
 * - By Teams user id: one point read. By AAD object id or UPN: a point read of the index row,
 *   then a point read of the reference, which must still carry that AAD id / UPN; a stale
 *   index row (the UPN moved to someone else, or was renamed) answers "not found", never the
 *   wrong person.
 * - Index rows are written before the reference: a crash in between leaves a dangling index
 *   row (harmless, checked on read), never a reference that cannot be found.
 * - The AAD index row also carries a copy of the route a send needs (service URL, 1:1 chat,
 *   status; no names): a notification's first try to an active user named by AAD id reads that
 *   row alone. Every write of those fields rewrites it (an observation before the reference, a
 *   status or chat change after it); a copy that lagged a concurrent change costs one try that
 *   Teams answers (403, 404), after which the reference is read and the copy rewritten.
 * - One partition per tenant: a roster sync writes in entity-group transactions of up to 100
 *   rows; reads by the processor stay at Teams' 50 requests/s per tenant, far under the
 *   ~2,000 operations/s one partition serves.
 * - History is never deleted: uninstall, removal and unreachability change `status`.
 */

export interface UpsertOutcome {
  reference: UserReference;
  created: boolean;
  changed: boolean;
}

/** The longest status reason kept. */
const MAX_STATUS_REASON = 500;

const MAX_ATTEMPTS = 8;
const READ_CONCURRENCY = 16;
const BATCH_SIZE = 100;

export class UserReferenceStore {
  constructor(
    private readonly tables: TableFactory,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async findByTeamsUserId(
    tenantId: string,
    teamsUserId: string,
  ): Promise<UserReference | undefined> {
    const stored = await this.read(await this.users(), tenantId, teamsUserId);
    return stored === undefined ? undefined : toReference(stored.entity);
  }

  /**
   * `read: "index-copy"` (a notification's first try): an active user's AAD index row answers
   * from its copy of the route (one read); otherwise, and by default, the reference is read.
   */
  async findByAadObjectId(
    tenantId: string,
    aadObjectId: string,
    options: { read?: "reference" | "index-copy" } = {},
  ): Promise<UserReference | undefined> {
    const found = await this.viaIndex(tenantId, aadIndexKey(aadObjectId), options.read);
    return found !== undefined && sameText(found.aadObjectId, aadObjectId) ? found : undefined;
  }

  /**
   * A service URL Teams uses for the tenant: any recorded user's (one user's row, one small
   * read). Teams serves a tenant from one regional URL; Graph names a chat without one.
   */
  async tenantServiceUrl(tenantId: string): Promise<string | undefined> {
    const users = await this.users();
    const pages = users
      .listEntities<{ serviceUrl?: unknown }>({
        queryOptions: {
          filter: odata`PartitionKey eq ${userPartitionKey(tenantId)}`,
          select: ["serviceUrl"],
        },
      })
      .byPage({ maxPageSize: 1 });
    for await (const page of pages) {
      for (const entity of page)
        if (typeof entity.serviceUrl === "string" && entity.serviceUrl !== "")
          return entity.serviceUrl;
      if (page.length > 0) return undefined;
    }
    return undefined;
  }

  /** Case-insensitive, as Entra ID treats UPNs. */
  async findByUserPrincipalName(tenantId: string, upn: string): Promise<UserReference | undefined> {
    const found = await this.viaIndex(tenantId, upnIndexKey(upn));
    return found !== undefined && sameText(found.userPrincipalName, upn) ? found : undefined;
  }

  /**
   * Records an observation: creates the reference or merges into it. Identity fields are
   * replaced when given and kept when not; a newer service URL replaces an older one; the
   * conversation id is kept unless one is given; see `nextStatus` for the status.
   * Concurrent writers are serialised by ETags (create = 409, update = 412: read again, retry).
   */
  async upsert(observation: UserObservation): Promise<UpsertOutcome> {
    const users = await this.users();
    for (let attempt = 1; ; attempt++) {
      const existing = await this.read(users, observation.tenantId, observation.teamsUserId);
      const { entity, changed } = merge(existing, observation, this.clock());
      if (!changed) return { reference: toReference(entity), created: false, changed };
      // After a lost race every index row is written again: the winner's copy may be older.
      await this.writeIndexRows(indexRowsFor(entity, attempt === 1 ? existing?.entity : undefined));
      try {
        if (existing === undefined) await users.createEntity(entity);
        else await users.updateEntity(entity, "Replace", { etag: existing.etag });
        return { reference: toReference(entity), created: existing === undefined, changed };
      } catch (error) {
        const raced = isRestError(error, 409) || isRestError(error, 412);
        if (!raced || attempt >= MAX_ATTEMPTS) throw error;
      }
    }
  }

  /**
   * Records many observations of one tenant (a roster page) with few round trips: parallel
   * point reads, then entity-group transactions of up to 100 rows. A transaction that loses a
   * race with another writer is redone row by row through `upsert`.
   */
  async upsertMany(observations: readonly UserObservation[]): Promise<{ written: number }> {
    const byTenant = new Map<string, Map<string, UserObservation>>();
    for (const o of observations) {
      const tenant = userPartitionKey(o.tenantId);
      const rows = byTenant.get(tenant) ?? new Map<string, UserObservation>();
      // One row may appear once per transaction: the newest observation wins (ties: the later).
      const seen = rows.get(o.teamsUserId);
      const now = this.clock();
      if (seen === undefined || observedTime(o, now) >= observedTime(seen, now))
        rows.set(o.teamsUserId, o);
      byTenant.set(tenant, rows);
    }
    const users = await this.users();
    let written = 0;
    for (const rows of byTenant.values()) {
      const list = [...rows.values()];
      const existing = await mapLimited(list, READ_CONCURRENCY, (o) =>
        this.read(users, o.tenantId, o.teamsUserId),
      );
      const now = this.clock();
      const planned = list.map((o, i) => ({ o, old: existing[i], ...merge(existing[i], o, now) }));
      const toWrite = planned.filter((p) => p.changed);
      await this.writeIndexRows(toWrite.flatMap((p) => indexRowsFor(p.entity, p.old?.entity)));
      for (const chunk of chunks(toWrite, BATCH_SIZE)) {
        try {
          await users.submitTransaction(
            chunk.map((p) =>
              p.old === undefined
                ? ["create", asTableEntity(p.entity)]
                : ["update", asTableEntity(p.entity), "Replace", { etag: p.old.etag }],
            ),
          );
        } catch (error) {
          if (!isRestError(error, 409) && !isRestError(error, 412) && !isRestError(error, 400))
            throw error;
          // Someone else wrote one of these rows meanwhile: merge each one against its latest.
          for (const p of chunk) await this.upsert(p.o);
        }
        written += chunk.length;
      }
    }
    return { written };
  }

  /** Stores (or, with `undefined`, forgets) the user's 1:1 conversation id. */
  async setConversationId(
    tenantId: string,
    teamsUserId: string,
    conversationId: string | undefined,
  ): Promise<void> {
    await this.mutate(tenantId, teamsUserId, (e) =>
      e.conversationId === conversationId ? undefined : { ...e, conversationId },
    );
  }

  /** Marks the reference (never deletes it). A missing reference is a no-op. */
  async markStatus(
    tenantId: string,
    teamsUserId: string,
    status: UserStatus,
    reason?: string,
  ): Promise<void> {
    const kept = reason === undefined ? undefined : clip(reason, MAX_STATUS_REASON);
    await this.mutate(tenantId, teamsUserId, (e) => {
      if (e.status === status && e.statusReason === kept) return undefined;
      const stamp = this.clock().toISOString();
      return {
        ...e,
        status,
        statusReason: kept,
        statusChangedAt: e.status === status ? e.statusChangedAt : stamp,
      };
    });
  }

  /** A change of the reference, then of its AAD index row's route copy (aadIndexRow). */
  private async mutate(
    tenantId: string,
    teamsUserId: string,
    change: (entity: UserEntity) => UserEntity | undefined,
  ): Promise<void> {
    let written: UserEntity | undefined;
    await updateWithEtag<UserEntity>(
      await this.users(),
      { partitionKey: userPartitionKey(tenantId), rowKey: userRowKey(teamsUserId) },
      (entity) => (written = change(entity)),
      { now: this.clock, maxAttempts: MAX_ATTEMPTS },
    );
    const aadObjectId = written?.aadObjectId;
    if (written !== undefined && aadObjectId !== undefined)
      await this.writeIndexRows([
        aadIndexRow({ ...written, aadObjectId, updatedAt: this.clock().toISOString() }),
      ]);
  }

  private async viaIndex(
    tenantId: string,
    rowKey: string,
    read: "reference" | "index-copy" = "reference",
  ): Promise<UserReference | undefined> {
    const index = await this.tables.table(TABLES.userIndex);
    let teamsUserId: unknown;
    try {
      const row = await index.getEntity(userPartitionKey(tenantId), rowKey);
      const copy = read === "index-copy" ? referenceFromIndexRow(row) : undefined;
      if (copy !== undefined) return copy;
      teamsUserId = row.teamsUserId;
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
    if (typeof teamsUserId !== "string") return undefined;
    return this.findByTeamsUserId(tenantId, teamsUserId);
  }

  private async writeIndexRows(rows: readonly TableEntity[]): Promise<void> {
    if (rows.length === 0) return;
    const index = await this.tables.table(TABLES.userIndex);
    if (rows.length === 1) {
      await index.upsertEntity(rows[0]!, "Replace");
      return;
    }
    const byPartition = new Map<string, TableEntity[]>();
    for (const row of rows) {
      const list = byPartition.get(row.partitionKey) ?? [];
      // Two users claiming one UPN in a batch: keep the later row (a batch may not repeat a key).
      const at = list.findIndex((r) => r.rowKey === row.rowKey);
      if (at >= 0) list.splice(at, 1);
      list.push(row);
      byPartition.set(row.partitionKey, list);
    }
    for (const list of byPartition.values()) {
      for (const chunk of chunks(list, BATCH_SIZE)) {
        await index.submitTransaction(chunk.map((r) => ["upsert", r, "Replace"]));
      }
    }
  }

  private read(
    table: TableClient,
    tenantId: string,
    teamsUserId: string,
  ): Promise<StoredEntity<UserEntity> | undefined> {
    return readEntity<UserEntity>(table, userPartitionKey(tenantId), userRowKey(teamsUserId));
  }

  private users(): Promise<TableClient> {
    return this.tables.table(TABLES.users);
  }
}

/** UserEntity is an interface (no index signature); the Tables SDK wants a record. */
function asTableEntity(entity: UserEntity): TableEntity {
  return entity as unknown as TableEntity;
}
