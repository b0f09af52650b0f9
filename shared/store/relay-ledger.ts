import { randomUUID } from "node:crypto";

import type { TableClient } from "@azure/data-tables";

import { withoutUndefined } from "./entities";
import { claimLeasedRow, leaseLive } from "./leased-claim";
import { encodeKey, isRestError, type TableFactory, TABLES } from "./table-factory";

/**
 * The @mention relay's send-at-most-once ledger: one row per (inbound activity, target), and
 * one for the thread reply, so Teams redelivering the activity, the broker redelivering the
 * work item after a crash, or a copy queued after the broker's duplicate-detection window
 * (https://learn.microsoft.com/azure/service-bus-messaging/duplicate-detection) never sends twice.
 *
 * Key design: Relays  PK = encodeKey(tenant lower-cased + "|" + conversation + "|" + activity),
 *                         each part encoded first so the "|" separators cannot be forged
 *                     RK = "user|" + encodeKey(teamsUserId) | "reply"
 *
 * Protocol (the welcome ledger's): a conditional insert claims the row with a lease (409: read
 * it); the holder settles it with an ETag-conditional update to `sent` or `failed`; a claim
 * whose lease ran out (its holder died) is taken over with an ETag-conditional update, of which
 * exactly one of several racers wins (412 for the rest). A holder that dies after Teams
 * accepted the message and before the update lands is the one window left: after the lease the
 * message goes out again. The lease is far longer than one send.
 */

export type RelayTarget = { kind: "user"; teamsUserId: string } | { kind: "reply" };

export interface RelayKey {
  readonly tenantId: string;
  readonly conversationId: string;
  readonly activityId: string;
  readonly target: RelayTarget;
}

export type RelayRowState = "claimed" | "sent" | "failed";

export interface RelayRecord {
  state: RelayRowState;
  owner: string;
  leaseUntil: string;
  attempts: number;
  activityId?: string;
  /** A short code or sanitised summary, never message text or names. */
  reason?: string;
}

export interface RelayClaim {
  readonly key: RelayKey;
  readonly owner: string;
  readonly etag: string;
  readonly attempt: number;
}

export type RelayClaimOutcome =
  | { kind: "claimed"; claim: RelayClaim }
  | { kind: "settled"; record: RelayRecord }
  | { kind: "busy"; leaseUntil: Date };

export interface RelayLedgerOptions {
  leaseMs: number;
  clock?: () => Date;
}

interface RelayEntity extends RelayRecord {
  partitionKey: string;
  rowKey: string;
}

export function relayKeys(key: RelayKey): { partitionKey: string; rowKey: string } {
  return {
    partitionKey: encodeKey(
      [key.tenantId.toLowerCase(), key.conversationId, key.activityId].map(encodeKey).join("|"),
    ),
    rowKey: key.target.kind === "reply" ? "reply" : `user|${encodeKey(key.target.teamsUserId)}`,
  };
}

export class RelayLedger {
  private readonly leaseMs: number;
  private readonly clock: () => Date;

  constructor(
    private readonly tables: TableFactory,
    options: RelayLedgerOptions,
  ) {
    this.leaseMs = options.leaseMs;
    this.clock = options.clock ?? (() => new Date());
  }

  async get(key: RelayKey): Promise<RelayRecord | undefined> {
    return (await this.read(await this.table(), key))?.record;
  }

  /** Tries to become the one sender to this target; `settled` says what an earlier one did. */
  async claim(key: RelayKey): Promise<RelayClaimOutcome> {
    const table = await this.table();
    const owner = randomUUID();
    const result = await claimLeasedRow<RelayEntity, RelayRecord>({
      table,
      clock: this.clock,
      row: (now, attempts) => ({
        ...relayKeys(key),
        state: "claimed",
        owner,
        leaseUntil: new Date(now.getTime() + this.leaseMs).toISOString(),
        attempts,
      }),
      read: () => this.read(table, key),
      takeable: (record, now) => record.state === "claimed" && !leaseLive(record, now),
    });
    if (result.kind === "claimed") {
      return { kind: "claimed", claim: { key, owner, etag: result.etag, attempt: result.attempt } };
    }
    const { record } = result;
    return record.state === "claimed"
      ? { kind: "busy", leaseUntil: new Date(record.leaseUntil) }
      : { kind: "settled", record };
  }

  /**
   * Settles the claim. "lost": the lease ran out and another instance took it over while this
   * one was sending, so the target may have two copies; the caller logs it.
   */
  async settle(
    claim: RelayClaim,
    outcome:
      { state: "sent"; activityId?: string | undefined } | { state: "failed"; reason: string },
  ): Promise<"settled" | "lost"> {
    const table = await this.table();
    const now = this.clock().toISOString();
    try {
      await table.updateEntity<RelayEntity>(
        withoutUndefined({
          ...relayKeys(claim.key),
          state: outcome.state,
          owner: claim.owner,
          leaseUntil: now,
          attempts: claim.attempt,
          activityId: outcome.state === "sent" ? outcome.activityId : undefined,
          reason: outcome.state === "failed" ? outcome.reason.slice(0, 500) : undefined,
        }),
        "Replace",
        { etag: claim.etag },
      );
      return "settled";
    } catch (error) {
      if (isRestError(error, 412)) return "lost";
      throw error;
    }
  }

  private async read(
    table: TableClient,
    key: RelayKey,
  ): Promise<{ record: RelayRecord; etag: string } | undefined> {
    const { partitionKey, rowKey } = relayKeys(key);
    try {
      const entity = await table.getEntity<RelayEntity>(partitionKey, rowKey);
      const { etag, state, owner, leaseUntil, attempts, activityId, reason } = entity;
      return {
        record: withoutUndefined({
          state,
          owner,
          leaseUntil,
          attempts: Number(attempts) || 1,
          activityId,
          reason,
        }),
        etag,
      };
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.relays);
  }
}
