import type { TableClient } from "@azure/data-tables";

import { isRestError } from "./table-factory";

/**
 * The claim step both once-only ledgers (welcomes, relays) share: a conditional insert makes one
 * writer the holder (409 for the rest, who read the row); a row the caller says may be taken
 * over (its lease ran out, or it was released) is replaced with an ETag-conditional update, of
 * which exactly one of several racers wins (412 for the rest, who read again).
 */

export interface TableKeys {
  partitionKey: string;
  rowKey: string;
}

export interface LeasedRow {
  state: string;
  leaseUntil: string;
  attempts: number;
}

export type LeasedClaimResult<E, R> =
  | { kind: "claimed"; entity: E; etag: string; attempt: number; takenOver: boolean }
  | { kind: "held"; record: R };

export interface LeasedClaimSteps<E extends TableKeys, R extends LeasedRow> {
  readonly table: TableClient;
  readonly clock: () => Date;
  /** The row this claim writes: the first attempt, or a takeover of `previous`. */
  row(now: Date, attempt: number, previous: R | undefined): E;
  read(): Promise<{ record: R; etag: string } | undefined>;
  /** Whether a stored row may be replaced by a new claim now. */
  takeable(record: R, now: Date): boolean;
}

const MAX_ROUNDS = 5;

export async function claimLeasedRow<E extends TableKeys, R extends LeasedRow>(
  steps: LeasedClaimSteps<E, R>,
): Promise<LeasedClaimResult<E, R>> {
  for (let round = 1; ; round++) {
    const now = steps.clock();
    const fresh = steps.row(now, 1, undefined);
    try {
      const created = await steps.table.createEntity(fresh);
      return claimed(fresh, created.etag, 1, false);
    } catch (error) {
      if (!isRestError(error, 409)) throw error;
    }
    const stored = await steps.read();
    if (stored === undefined) continue; // vanished between insert and read: insert again
    const { record, etag } = stored;
    if (!steps.takeable(record, now)) return { kind: "held", record };
    const attempt = record.attempts + 1;
    const takeover = steps.row(now, attempt, record);
    try {
      const updated = await steps.table.updateEntity(takeover, "Replace", { etag });
      return claimed(takeover, updated.etag, attempt, true);
    } catch (error) {
      // 412: another instance took it over first; read again and report what it did.
      if (!isRestError(error, 412) || round >= MAX_ROUNDS) throw error;
    }
  }
}

function claimed<E, R>(
  entity: E,
  etag: string | undefined,
  attempt: number,
  takenOver: boolean,
): LeasedClaimResult<E, R> {
  if (etag === undefined) throw new Error("Table service answered a write without an ETag");
  return { kind: "claimed", entity, etag, attempt, takenOver };
}

/** A lease still running at `now`. */
export function leaseLive(record: LeasedRow, now: Date): boolean {
  return new Date(record.leaseUntil) > now;
}
