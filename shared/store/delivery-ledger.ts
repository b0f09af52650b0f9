import type { TableClient } from "@azure/data-tables";
import { z } from "zod";

import {
  type Recipient,
  recipientFromParts,
  recipientKey,
  type RecipientKind,
  recipientParts,
} from "../model/recipient";
import { chunks, mapLimited } from "../util/collections";
import { clip } from "../validation/json-guard";
import type { Claim } from "./delivery-claim";
import type { Delivery, DeliveryPatch, NewDelivery } from "./delivery-row";
import { type DeliveryState, FINAL_STATES } from "./delivery-states";
import { withoutUndefined, writtenRow } from "./entities";
import { type RequestKey, requestRowKey } from "./notification-requests";
import { actionsJson, parseActions } from "./recorded-actions";
import { eventsJson, parseEvents } from "./stored-events";
import { encodeKey, isRestError, odata, type TableFactory, TABLES } from "./table-factory";

/**
 * The delivery ledger: one row per request and recipient, in Table Storage.
 *
 *   Deliveries  PK = encodeKey(tenant, lower-cased) + "|" + encodeKey(requestId)
 *               RK = encodeKey(recipientKey)             -> the recipient's delivery
 *               RK = "user~" + encodeKey(person)         -> the per-user guard
 *
 * One partition per request (tenant and id), so a fan-out writes its rows in entity-group
 * transactions of 100 and the status API reads a request with one paged query.
 *
 * States: `pending` (waiting for a send, or for a retry), `sending` (claimed by one invocation
 * with an ETag-conditional write just before it calls Teams), then one of the final states
 * `sent`, `unreachable`, `failed`, `rejected`, `duplicate`. A final row is never sent to again.
 * A request's update or recall changes final rows too: a `sent` row records the `revision` its
 * copy shows (a PUT moves it forward, never back: notifications/copy-changes.ts) and ends
 * `recalled` once its copy is deleted; a row not yet sent when the request is recalled ends
 * `cancelled`.
 * A user Herald has never seen passes through `installing` (Herald is installing its app for
 * them through Graph) and `waiting-for-chat` (installed; Teams has not told Herald the 1:1 chat
 * yet) before `sending` (proactive-install.ts).
 *
 * The per-user guard makes "one copy per person" hold under concurrency: a request may name one
 * person several ways (AAD id, UPN, Teams id, a team's roster, a group), which only resolve to
 * one person at delivery. The first row to reach a step for a person inserts that person's
 * guard in the same transaction as its own write: the claim before the send (the person is the
 * Teams user id) and, for someone Herald has never seen, the step into `installing` (the person
 * is `aad:` and the AAD object id, so the app is installed once per person too). A second name
 * of that person finds the guard taken and ends `duplicate` of the first. (Recipient keys start
 * with their kind's name, so no recipient row key starts with `user~`.)
 */
export type { Delivery, DeliveryPatch, NewDelivery } from "./delivery-row";
export { type DeliveryState, FINAL_STATES } from "./delivery-states";

const GUARD_PREFIX = "user~";

/** A row as stored: the recipient as its kind and value, the keys; the rest field for field. */
type DeliveryEntity = Omit<Delivery, "recipient" | "recipientKey" | "etag" | "events"> & {
  partitionKey: string;
  rowKey: string;
  recipientKind: string;
  recipientValue: string;
  eventsJson?: string;
  actionsJson?: string;
};

/** An ETag-conditional write: done, or another invocation changed the row first. */
export type WriteResult =
  { readonly kind: "written"; readonly row: Delivery } | { readonly kind: "conflict" };

/** A write that also takes a person's guard. */
export type GuardedResult =
  | WriteResult
  /** Another recipient of the request holds this person's guard: it reaches them. */
  | { readonly kind: "guard-taken"; readonly by: string };

/** The first claim of a row not yet written (the inline steady path). */
export type CreateClaimedResult =
  | { readonly kind: "written"; readonly row: Delivery }
  /** The row is there already (a redelivery): read it and go the usual way. */
  | { readonly kind: "exists" }
  | { readonly kind: "guard-taken"; readonly by: string };

/**
 * A row as `createRows` wrote it, when it was a plain `pending` row: enough to claim it without
 * reading it first (`asWritten`). The claim is conditional on the ETag, so a row changed since
 * fails the claim and is read then. An ETag as Table Storage gives one (`W/"datetime'…'"`), never
 * `*`, which would make the claim unconditional.
 */
export const writtenRowSchema = z.object({
  etag: z
    .string()
    .max(256)
    .regex(/^(W\/)?"[^"*]+"$/, "must be an entity's ETag"),
  createdAt: z.iso.datetime(),
});
export type WrittenRow = z.infer<typeof writtenRowSchema>;

/** `guard: false`: no other recipient of the request can be the same person (default true). */
export interface ClaimOptions {
  readonly guard?: boolean;
}

/** The longest name kept for display (Entra caps a display name at 256, a UPN at 113). */
const MAX_NAME = 256;
const clipped = (name: string | undefined) =>
  name === undefined ? undefined : clip(name, MAX_NAME);

const TRANSACTION_SIZE = 100;
const WRITE_CONCURRENCY = 4;

/** A row created `pending` with nothing but its recipient: what `asWritten` rebuilds exactly. */
function isPlain(row: NewDelivery): boolean {
  const { state, lastError, events, userPrincipalName, displayName } = row;
  return (
    (state ?? "pending") === "pending" &&
    [lastError, events, userPrincipalName, displayName].every((v) => v === undefined)
  );
}

/** The request's own row key: one partition per (tenant, id), keyed the same way everywhere. */
export function deliveryPartitionKey(request: RequestKey): string {
  return requestRowKey(request);
}

/** The guard subject of a person Herald knows only by AAD object id (proactive install). */
export function aadGuardSubject(aadObjectId: string): string {
  return `aad:${aadObjectId.toLowerCase()}`;
}

function guardRowKey(person: string): string {
  return `${GUARD_PREFIX}${encodeKey(person)}`;
}

function fromEntity(entity: DeliveryEntity & { etag?: string; timestamp?: unknown }): Delivery {
  const {
    partitionKey: _pk,
    rowKey: _rk,
    recipientKind,
    recipientValue,
    etag,
    timestamp: _ts,
    eventsJson: stored,
    actionsJson: storedActions,
    ...fields
  } = entity;
  const recipient = recipientFromParts(recipientKind as RecipientKind, recipientValue);
  const events = parseEvents(stored);
  const actions = parseActions(storedActions);
  return {
    ...fields,
    tenantId: fields.tenantId ?? "",
    recipientKey: recipientKey(recipient),
    recipient,
    attempts: fields.attempts ?? 0,
    ...(events !== undefined ? { events } : {}),
    ...(actions !== undefined ? { actions } : {}),
    etag: etag ?? "",
  };
}

function toEntity(delivery: Omit<Delivery, "etag"> & { etag?: string }): DeliveryEntity {
  const { recipient, recipientKey: key, etag: _etag, events, actions, ...fields } = delivery;
  const { kind, value } = recipientParts(recipient);
  return withoutUndefined({
    ...fields,
    partitionKey: deliveryPartitionKey({ tenantId: delivery.tenantId, id: delivery.requestId }),
    rowKey: encodeKey(key),
    recipientKind: kind,
    recipientValue: value,
    eventsJson: eventsJson(events),
    actionsJson: actionsJson(actions),
  });
}

export class DeliveryLedger {
  constructor(
    private readonly tables: TableFactory,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async get(request: RequestKey, recipientKey: string): Promise<Delivery | undefined> {
    const table = await this.table();
    try {
      const entity = await table.getEntity<DeliveryEntity>(
        deliveryPartitionKey(request),
        encodeKey(recipientKey),
      );
      return fromEntity(entity);
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  /** The row, created as `pending` if the request has none for this recipient yet. */
  async ensure(request: RequestKey, recipientKey: string, recipient: Recipient): Promise<Delivery> {
    const existing = await this.get(request, recipientKey);
    if (existing !== undefined) return existing;
    const table = await this.table();
    const entity = toEntity(this.fresh(request, recipientKey, recipient, "pending"));
    try {
      const response = await table.createEntity(entity);
      return fromEntity({ ...entity, etag: response.etag ?? "" });
    } catch (error) {
      if (!isRestError(error, 409)) throw error;
    }
    const raced = await this.get(request, recipientKey);
    if (raced === undefined) throw new Error(`delivery row ${request.id}/${recipientKey} vanished`);
    return raced;
  }

  /**
   * Creates the row already claimed (`sending`) together with the user's guard, in one
   * transaction: the steady path's one write before the call to Teams. With `guard: false` (no
   * second name of that person can be in the request, as for its only recipient) it takes no
   * guard: one insert.
   */
  async createClaimed(
    request: RequestKey,
    recipientKey: string,
    recipient: Recipient,
    claim: Claim,
    options: ClaimOptions = {},
  ): Promise<CreateClaimedResult> {
    const guard = options.guard ?? true;
    const table = await this.table();
    const row = {
      ...this.fresh(request, recipientKey, recipient, "sending"),
      ...claim,
      attempts: 1,
      ...(guard ? { guardOf: claim.teamsUserId } : {}),
    };
    const entity = toEntity(row);
    try {
      const etag = !guard
        ? (await table.createEntity(entity)).etag
        : (
            await table.submitTransaction([
              ["create", entity],
              ["create", this.guardEntity(request, claim.teamsUserId, recipientKey)],
            ])
          ).subResponses[0]?.etag;
      return { kind: "written", row: writtenRow(row, etag) };
    } catch (error) {
      if (!isRestError(error, 409)) throw error;
    }
    if (!guard) return { kind: "exists" };
    if ((await this.get(request, recipientKey)) !== undefined) return { kind: "exists" };
    const holder = await this.guardHolder(request, claim.teamsUserId);
    // The guard is this recipient's own, with no row (never written so): the usual way mends it.
    return holder !== undefined && holder !== recipientKey
      ? { kind: "guard-taken", by: holder }
      : { kind: "exists" };
  }

  /**
   * Claims an existing row (ETag-conditional) for a send, taking the user's guard in the same
   * transaction unless the row holds it already or `guard` is false (see `createClaimed`).
   */
  claim(current: Delivery, claim: Claim, options: ClaimOptions = {}): Promise<GuardedResult> {
    const patch: DeliveryPatch = {
      ...claim,
      state: "sending",
      attempts: current.attempts + 1,
      nextAttemptAt: undefined,
    };
    return options.guard === false
      ? this.update(current, patch)
      : this.guarded(current, claim.teamsUserId, patch);
  }

  /**
   * Writes `patch` (ETag-conditional) and takes `person`'s guard in the same transaction, unless
   * the row holds it already; `guard-taken` when another recipient of the request holds it (the
   * row is then left as it was).
   */
  async guarded(current: Delivery, person: string, patch: DeliveryPatch): Promise<GuardedResult> {
    if (current.guardOf === person) return this.update(current, patch);
    const table = await this.table();
    const next = toEntity({
      ...current,
      ...patch,
      guardOf: person,
      updatedAt: this.clock().toISOString(),
    });
    const request = { tenantId: current.tenantId, id: current.requestId };
    try {
      const response = await table.submitTransaction([
        ["update", next, "Replace", { etag: current.etag }],
        ["create", this.guardEntity(request, person, current.recipientKey)],
      ]);
      return {
        kind: "written",
        row: fromEntity({ ...next, etag: response.subResponses[0]?.etag ?? "" }),
      };
    } catch (error) {
      if (isRestError(error, 412) || isRestError(error, 404)) return { kind: "conflict" };
      if (!isRestError(error, 409)) throw error;
    }
    const holder = await this.guardHolder(request, person);
    if (holder !== undefined && holder !== current.recipientKey)
      return { kind: "guard-taken", by: holder };
    // The guard is this row's own (an earlier write that was not recorded on the row).
    return this.update(current, { ...patch, guardOf: person });
  }

  /**
   * Creates rows in entity-group transactions of 100 (one partition per request). Rows that
   * already exist are left as they are: a transaction that meets one (409) is redone row by
   * row. Returns how many rows this call created.
   */
  async create(request: RequestKey, rows: readonly NewDelivery[]): Promise<number> {
    return (await this.createRows(request, rows)).created;
  }

  /**
   * As `create`, and the plain `pending` rows it wrote (by recipient key), for their deliveries
   * to claim without a read (`asWritten`).
   */
  async createRows(
    request: RequestKey,
    rows: readonly NewDelivery[],
  ): Promise<{ created: number; written: Map<string, WrittenRow> }> {
    const written = new Map<string, WrittenRow>();
    if (rows.length === 0) return { created: 0, written };
    const table = await this.table();
    const pairs = rows.map((row) => ({
      row,
      entity: toEntity({
        ...this.fresh(request, row.recipientKey, row.recipient, row.state ?? "pending"),
        lastError: row.lastError,
        events: row.events,
        userPrincipalName: clipped(row.userPrincipalName),
        displayName: clipped(row.displayName),
      }),
    }));
    const counts = await mapLimited(
      chunks(pairs, TRANSACTION_SIZE),
      WRITE_CONCURRENCY,
      async (chunk) => {
        try {
          const response = await table.submitTransaction(chunk.map((p) => ["create", p.entity]));
          // Sub-responses come in the operations' order; an ETag may keep its line's CR.
          chunk.forEach(({ row, entity }, i) => {
            const etag = response.subResponses[i]?.etag?.trim();
            if (etag !== undefined && etag !== "" && isPlain(row))
              written.set(row.recipientKey, { etag, createdAt: entity.createdAt });
          });
          return chunk.length;
        } catch (error) {
          if (!isRestError(error, 409) && !isRestError(error, 400)) throw error;
          let created = 0;
          for (const { entity } of chunk) {
            try {
              await table.createEntity(entity);
              created += 1;
            } catch (inner) {
              if (!isRestError(inner, 409)) throw inner;
            }
          }
          return created;
        }
      },
    );
    return { created: counts.reduce((a, b) => a + b, 0), written };
  }

  /** A plain `pending` row as `createRows` wrote it (see `WrittenRow`), without reading it. */
  asWritten(
    request: RequestKey,
    recipientKey: string,
    recipient: Recipient,
    row: WrittenRow,
  ): Delivery {
    return writtenRow(
      this.fresh(request, recipientKey, recipient, "pending", row.createdAt),
      row.etag,
    );
  }

  /**
   * Applies `patch` if the row is unchanged since it was read (ETag); `conflict` when another
   * invocation changed it first (read it again and decide).
   */
  async update(current: Delivery, patch: DeliveryPatch): Promise<WriteResult> {
    const table = await this.table();
    const row = { ...current, ...patch, updatedAt: this.clock().toISOString() };
    const entity = toEntity(row);
    try {
      const response = await table.updateEntity(entity, "Replace", { etag: current.etag });
      return { kind: "written", row: writtenRow(row, response.etag) };
    } catch (error) {
      if (isRestError(error, 412) || isRestError(error, 404)) return { kind: "conflict" };
      throw error;
    }
  }

  /** Every recipient row of a request, paged from the table (guards are not listed). */
  async *list(request: RequestKey): AsyncIterable<Delivery> {
    const table = await this.table();
    const pages = table
      .listEntities<DeliveryEntity>({
        queryOptions: { filter: odata`PartitionKey eq ${deliveryPartitionKey(request)}` },
      })
      .byPage({ maxPageSize: 1000 });
    for await (const page of pages) {
      for (const entity of page)
        if (!entity.rowKey.startsWith(GUARD_PREFIX)) yield fromEntity(entity);
    }
  }

  private fresh(
    request: RequestKey,
    recipientKey: string,
    recipient: Recipient,
    state: DeliveryState,
    stamp = this.clock().toISOString(),
  ): Omit<Delivery, "etag"> {
    return {
      tenantId: request.tenantId,
      requestId: request.id,
      recipientKey,
      recipient,
      state,
      attempts: 0,
      createdAt: stamp,
      updatedAt: stamp,
      completedAt: FINAL_STATES.has(state) ? stamp : undefined,
    };
  }

  private guardEntity(request: RequestKey, person: string, owner: string) {
    return {
      partitionKey: deliveryPartitionKey(request),
      rowKey: guardRowKey(person),
      owner,
      createdAt: this.clock().toISOString(),
    };
  }

  /**
   * The recipient key of the row holding a request's guard for one person (after a 409);
   * undefined for a guard that names no owner (taken as the caller's own).
   */
  private async guardHolder(request: RequestKey, person: string): Promise<string | undefined> {
    const table = await this.table();
    try {
      const guard = await table.getEntity<{ owner?: unknown }>(
        deliveryPartitionKey(request),
        guardRowKey(person),
      );
      return typeof guard.owner === "string" ? guard.owner : undefined;
    } catch (error) {
      if (isRestError(error, 404))
        throw new Error(`delivery guard of ${request.id} vanished after a 409`, { cause: error });
      throw error;
    }
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.deliveries);
  }
}
