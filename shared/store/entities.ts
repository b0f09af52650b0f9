import type { TableClient } from "@azure/data-tables";

import { isRestError } from "./table-factory";

/** Table Storage rejects `undefined` properties; drop them before writing or returning. */
export function withoutUndefined<T extends object>(value: T): T {
  // On every entity written and read: one pass, no arrays of entries in between.
  const kept: Record<string, unknown> = {};
  for (const key in value) {
    const v = value[key];
    if (v !== undefined) kept[key] = v;
  }
  return kept as T;
}

/**
 * A row as just written, from what was written: not read back out of its entity, which would
 * parse its JSON properties (message, events, actions) again on every write.
 */
export function writtenRow<R extends object>(
  row: R,
  etag: string | undefined,
): R & { etag: string } {
  // One copy of the row, not a spread and then a copy of the spread.
  const written = withoutUndefined(row) as R & { etag: string };
  written.etag = etag ?? "";
  return written;
}

export interface StoredEntity<E> {
  readonly entity: E;
  readonly etag: string;
}

/** A point read; undefined when the row does not exist. */
export async function readEntity<E extends object>(
  table: TableClient,
  partitionKey: string,
  rowKey: string,
): Promise<StoredEntity<E> | undefined> {
  try {
    const found = await table.getEntity(partitionKey, rowKey);
    const { etag, timestamp: _timestamp, ...rest } = found;
    return { entity: rest as unknown as E, etag };
  } catch (error) {
    if (isRestError(error, 404)) return undefined;
    throw error;
  }
}

/**
 * Read, change, write back with the ETag, and start again when another writer got there first
 * (412). `change` returns undefined for "nothing to do"; a missing row is left missing.
 */
export async function updateWithEtag<E extends object>(
  table: TableClient,
  key: { partitionKey: string; rowKey: string },
  change: (entity: E) => E | undefined,
  options: { now: () => Date; maxAttempts: number },
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const existing = await readEntity<E>(table, key.partitionKey, key.rowKey);
    if (existing === undefined) return;
    const next = change(existing.entity);
    if (next === undefined) return;
    try {
      await table.updateEntity(
        { ...withoutUndefined(next), ...key, updatedAt: options.now().toISOString() },
        "Replace",
        { etag: existing.etag },
      );
      return;
    } catch (error) {
      if (!isRestError(error, 412) || attempt >= options.maxAttempts) throw error;
    }
  }
}
