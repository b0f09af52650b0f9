import type { TableClient } from "@azure/data-tables";

import { clip } from "../validation/json-guard";
import { readEntity, type StoredEntity, updateWithEtag, withoutUndefined } from "./entities";
import { storedName } from "./limits";
import { encodeKey, isRestError, odata, type TableFactory, TABLES } from "./table-factory";

/**
 * Teams the bot is installed in, and their rosters.
 *
 * Key design:
 *   Teams        PK = encodeKey(tenantId, lower-cased)                  RK = encodeKey(teamId)        -> the team
 *   TeamMembers  PK = encodeKey(tenantId) + "|" + encodeKey(teamId)    RK = encodeKey(teamsUserId)   -> membership
 *
 * A team is a point read; its roster is one partition, read in pages for fan-out. `encodeKey`
 * escapes "|", so the separator is unambiguous. Memberships and teams are marked, never deleted.
 */

export type TeamStatus = "active" | "removed";
export type MemberStatus = "active" | "removed";

export interface TeamReference {
  tenantId: string;
  teamId: string;
  name?: string;
  aadGroupId?: string;
  /** The General channel's conversation id: Teams makes it the team id. */
  generalChannelId: string;
  serviceUrl: string;
  status: TeamStatus;
  statusReason?: string;
  lastRosterSyncAt?: string;
  memberCount?: number;
  createdAt: string;
  updatedAt: string;
}

export interface TeamObservation {
  tenantId: string;
  teamId: string;
  name?: string | undefined;
  aadGroupId?: string | undefined;
  serviceUrl: string;
}

interface TeamEntity extends TeamReference {
  partitionKey: string;
  rowKey: string;
}

type MemberEntity = {
  partitionKey: string;
  rowKey: string;
  teamsUserId: string;
  status: MemberStatus;
  /** The roster sync that last saw this member (empty when learned from an event). */
  syncId: string;
  updatedAt: string;
};

const MAX_ATTEMPTS = 8;
const BATCH_SIZE = 100;

export function teamPartitionKey(tenantId: string): string {
  return encodeKey(tenantId.toLowerCase());
}

export function teamMembersPartitionKey(tenantId: string, teamId: string): string {
  return `${encodeKey(tenantId.toLowerCase())}|${encodeKey(teamId)}`;
}

function toReference(entity: TeamEntity): TeamReference {
  const { partitionKey: _pk, rowKey: _rk, ...rest } = entity;
  return withoutUndefined(rest);
}

export class TeamStore {
  constructor(
    private readonly tables: TableFactory,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async get(tenantId: string, teamId: string): Promise<TeamReference | undefined> {
    const stored = await this.read(await this.teams(), tenantId, teamId);
    return stored === undefined ? undefined : toReference(stored.entity);
  }

  /** Records the team as installed (active), keeping what the observation does not say. */
  async upsert(observation: TeamObservation): Promise<TeamReference> {
    const teams = await this.teams();
    for (let attempt = 1; ; attempt++) {
      const existing = await this.read(teams, observation.tenantId, observation.teamId);
      const stamp = this.clock().toISOString();
      const old = existing?.entity;
      const next: TeamEntity = withoutUndefined({
        ...old,
        partitionKey: teamPartitionKey(observation.tenantId),
        rowKey: encodeKey(observation.teamId),
        tenantId: observation.tenantId.toLowerCase(),
        teamId: observation.teamId,
        name: storedName(observation.name) ?? old?.name,
        aadGroupId: observation.aadGroupId ?? old?.aadGroupId,
        generalChannelId: observation.teamId,
        serviceUrl: observation.serviceUrl,
        status: "active" as const,
        statusReason: old?.status === "active" ? old.statusReason : undefined,
        createdAt: old?.createdAt ?? stamp,
        updatedAt: stamp,
      });
      if (
        old !== undefined &&
        old.status === "active" &&
        old.name === next.name &&
        old.serviceUrl === next.serviceUrl &&
        old.aadGroupId === next.aadGroupId
      ) {
        return toReference(old);
      }
      try {
        if (existing === undefined) await teams.createEntity(next);
        else await teams.updateEntity(next, "Replace", { etag: existing.etag });
        return toReference(next);
      } catch (error) {
        const raced = isRestError(error, 409) || isRestError(error, 412);
        if (!raced || attempt >= MAX_ATTEMPTS) throw error;
      }
    }
  }

  /** Marks the team (bot removed, team deleted); a missing team is a no-op. */
  async markStatus(
    tenantId: string,
    teamId: string,
    status: TeamStatus,
    reason?: string,
  ): Promise<void> {
    const kept = reason === undefined ? undefined : clip(reason, 500);
    await this.mutate(tenantId, teamId, (e) =>
      e.status === status && e.statusReason === kept
        ? undefined
        : { ...e, status, statusReason: kept },
    );
  }

  async recordRosterSync(
    tenantId: string,
    teamId: string,
    result: { memberCount: number; syncedAt: Date },
  ): Promise<void> {
    await this.mutate(tenantId, teamId, (e) => ({
      ...e,
      memberCount: result.memberCount,
      lastRosterSyncAt: result.syncedAt.toISOString(),
    }));
  }

  /** Records members as active (batched; one partition per team). */
  async addMembers(
    tenantId: string,
    teamId: string,
    teamsUserIds: readonly string[],
    syncId = "",
  ): Promise<void> {
    await this.writeMembers(tenantId, teamId, teamsUserIds, "active", syncId);
  }

  /** Marks memberships removed (kept as history). */
  async removeMembers(
    tenantId: string,
    teamId: string,
    teamsUserIds: readonly string[],
  ): Promise<void> {
    await this.writeMembers(tenantId, teamId, teamsUserIds, "removed", "");
  }

  /**
   * After a full roster sync: marks removed every active member the sync `syncId` did not
   * see and nobody touched since it started (a member-added event during the sync wins).
   */
  async removeMembersNotIn(
    tenantId: string,
    teamId: string,
    syncId: string,
    syncStartedAt: Date,
  ): Promise<string[]> {
    const members = await this.members();
    const stale: string[] = [];
    const rows = members.listEntities<MemberEntity>({
      queryOptions: {
        filter: odata`PartitionKey eq ${teamMembersPartitionKey(tenantId, teamId)} and status eq 'active' and syncId ne ${syncId}`,
      },
    });
    for await (const row of rows) {
      if (row.updatedAt < syncStartedAt.toISOString()) stale.push(row.teamsUserId);
    }
    await this.removeMembers(tenantId, teamId, stale);
    return stale;
  }

  /** Every active member's Teams user id, paged from the table (for fan-out). */
  async *listMemberIds(tenantId: string, teamId: string): AsyncIterable<string> {
    const members = await this.members();
    const pages = members
      .listEntities<Pick<MemberEntity, "teamsUserId">>({
        queryOptions: {
          filter: odata`PartitionKey eq ${teamMembersPartitionKey(tenantId, teamId)} and status eq 'active'`,
          select: ["teamsUserId"],
        },
      })
      .byPage({ maxPageSize: 1000 });
    for await (const page of pages) {
      for (const row of page) yield row.teamsUserId;
    }
  }

  async memberStatus(
    tenantId: string,
    teamId: string,
    teamsUserId: string,
  ): Promise<MemberStatus | undefined> {
    try {
      const row = await (
        await this.members()
      ).getEntity<MemberEntity>(teamMembersPartitionKey(tenantId, teamId), encodeKey(teamsUserId));
      return row.status;
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  private async writeMembers(
    tenantId: string,
    teamId: string,
    teamsUserIds: readonly string[],
    status: MemberStatus,
    syncId: string,
  ): Promise<void> {
    if (teamsUserIds.length === 0) return;
    const members = await this.members();
    const stamp = this.clock().toISOString();
    const partitionKey = teamMembersPartitionKey(tenantId, teamId);
    const rows: MemberEntity[] = [...new Set(teamsUserIds)].map((id) => ({
      partitionKey,
      rowKey: encodeKey(id),
      teamsUserId: id,
      status,
      syncId,
      updatedAt: stamp,
    }));
    for (let i = 0; i < rows.length; i += BATCH_SIZE) {
      const chunk = rows.slice(i, i + BATCH_SIZE);
      await members.submitTransaction(chunk.map((r) => ["upsert", r, "Replace"]));
    }
  }

  private async mutate(
    tenantId: string,
    teamId: string,
    change: (entity: TeamEntity) => TeamEntity | undefined,
  ): Promise<void> {
    await updateWithEtag(
      await this.teams(),
      { partitionKey: teamPartitionKey(tenantId), rowKey: encodeKey(teamId) },
      change,
      { now: this.clock, maxAttempts: MAX_ATTEMPTS },
    );
  }

  private read(
    table: TableClient,
    tenantId: string,
    teamId: string,
  ): Promise<StoredEntity<TeamEntity> | undefined> {
    return readEntity<TeamEntity>(table, teamPartitionKey(tenantId), encodeKey(teamId));
  }

  private teams(): Promise<TableClient> {
    return this.tables.table(TABLES.teams);
  }

  private members(): Promise<TableClient> {
    return this.tables.table(TABLES.teamMembers);
  }
}
