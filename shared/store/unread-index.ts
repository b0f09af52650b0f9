import type { TableClient } from "@azure/data-tables";

import { encodeKey, isRestError, odata, type TableFactory, TABLES } from "./table-factory";

/**
 * Which sent notifications a user has not read yet, by the user: what a read receipt needs
 * without scanning the ledger. Teams' message ids in a 1:1 chat with a bot are numbers (the
 * receipt's `lastReadMessageId` means "every message up to this one"), so the row key is the
 * activity id zero-padded to 20 digits and "up to" is one range query.
 *
 *   Unread  PK = encodeKey(tenant, lower-cased) + "|" + encodeKey(teamsUserId)
 *           RK = activity id, 20 digits               -> the delivery (request, recipient key)
 *
 * Written when a notification is sent (one upsert), removed once its read is recorded. A row may
 * outlive its delivery's read (a redelivery wrote it again): the next receipt finds the delivery
 * read and removes it.
 */
export interface UnreadEntry {
  readonly tenantId: string;
  readonly teamsUserId: string;
  readonly activityId: string;
  readonly requestId: string;
  readonly recipientKey: string;
}

const ID_DIGITS = 20;

/** A Teams message id that can be compared as a number (what receipts speak of), padded. */
export function activityOrderKey(activityId: string): string | undefined {
  return /^\d{1,20}$/.test(activityId) ? activityId.padStart(ID_DIGITS, "0") : undefined;
}

function partitionOf(tenantId: string, teamsUserId: string): string {
  return `${encodeKey(tenantId.toLowerCase())}|${encodeKey(teamsUserId)}`;
}

export class UnreadIndex {
  constructor(private readonly tables: TableFactory) {}

  /** Records a sent activity; false when its id is not a number (no receipt can name it). */
  async add(entry: UnreadEntry): Promise<boolean> {
    const rowKey = activityOrderKey(entry.activityId);
    if (rowKey === undefined) return false;
    const table = await this.table();
    await table.upsertEntity(
      {
        partitionKey: partitionOf(entry.tenantId, entry.teamsUserId),
        rowKey,
        tenantId: entry.tenantId,
        teamsUserId: entry.teamsUserId,
        activityId: entry.activityId,
        requestId: entry.requestId,
        recipientKey: entry.recipientKey,
      },
      "Replace",
    );
    return true;
  }

  /** The user's unread deliveries with an activity id up to `lastReadMessageId`, oldest first. */
  async *upTo(
    tenantId: string,
    teamsUserId: string,
    lastReadMessageId: string,
  ): AsyncIterable<UnreadEntry> {
    const upper = activityOrderKey(lastReadMessageId);
    if (upper === undefined) return;
    const table = await this.table();
    const rows = table.listEntities<Record<string, unknown>>({
      queryOptions: {
        filter: odata`PartitionKey eq ${partitionOf(tenantId, teamsUserId)} and RowKey le ${upper}`,
      },
    });
    for await (const row of rows) {
      const { activityId, requestId, recipientKey } = row;
      if (
        typeof activityId === "string" &&
        typeof requestId === "string" &&
        typeof recipientKey === "string"
      )
        yield { tenantId, teamsUserId, activityId, requestId, recipientKey };
    }
  }

  async remove(entry: UnreadEntry): Promise<void> {
    const rowKey = activityOrderKey(entry.activityId);
    if (rowKey === undefined) return;
    const table = await this.table();
    try {
      await table.deleteEntity(partitionOf(entry.tenantId, entry.teamsUserId), rowKey);
    } catch (error) {
      if (!isRestError(error, 404)) throw error;
    }
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.unread);
  }
}
