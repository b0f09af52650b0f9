import type { TableClient } from "@azure/data-tables";

import type { CloudEvent } from "../model/cloud-event";
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
import { type DeliveryState, FINAL_STATES } from "./delivery-states";
import { withoutUndefined, writtenRow } from "./entities";
import { type RequestKey, requestRowKey } from "./notification-requests";
import { actionsJson, parseActions, type RecordedAction } from "./recorded-actions";
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
export { type DeliveryState, FINAL_STATES } from "./delivery-states";

const GUARD_PREFIX = "user~";

export interface Delivery {
  readonly tenantId: string;
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
  /**
   * The request revision the copy in the chat shows (undefined: 1, the request as first sent).
   * Written with `sent`, and by each update of the copy, only ever upwards.
   */
  readonly revision?: number | undefined;
  /** A change of the sent copy holds the claim (`claimedBy`, …): which one. */
  readonly changing?: "update" | "recall" | undefined;
  /** An update found the copy gone (404) and sent it afresh: at most once per row. */
  readonly resent?: boolean | undefined;
  /** The user's `29:` id once the recipient was resolved. */
  readonly teamsUserId?: string | undefined;
  /** The person whose per-user guard this row took last (`29:` id, or `aad:` + AAD id). */
  readonly guardOf?: string | undefined;
  /** Proactive install: the user's AAD object id as Graph resolved it. */
  readonly aadObjectId?: string | undefined;
  /** Proactive install: when Graph confirmed the app installed (the wait for the chat starts). */
  readonly installedAt?: string | undefined;
  /** Proactive install: the app's installation for the user, once Graph named it. */
  readonly installationId?: string | undefined;
  /** `duplicate`: the recipient key of the row that delivers to the same person. */
  readonly duplicateOf?: string | undefined;
  /** Who the recipient is, as Herald learned it (a group member as Graph named them): display only. */
  readonly userPrincipalName?: string | undefined;
  readonly displayName?: string | undefined;
  /** `<messageId>#<deliveryCount>` of the invocation holding the `sending` claim. */
  readonly claimedBy?: string | undefined;
  /** The process that made the claim (notifications/claim-holders.ts). */
  readonly claimHolder?: string | undefined;
  /** The broker session the claim was made in (the tenant's), when it came through one. */
  readonly claimSession?: string | undefined;
  readonly claimExpiresAt?: string | undefined;
  readonly nextAttemptAt?: string | undefined;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly completedAt?: string | undefined;
  /** When Teams said the user read the message (a read receipt); set once. */
  readonly readAt?: string | undefined;
  /** The token of the card's buttons' reference (model/card-actions.ts), kept once written. */
  readonly cardToken?: string | undefined;
  /**
   * The verb whose answer the copy is to show once clicked, and the verb whose answer it shows
   * (notifications/answered-copy.ts): they differ while the click's replacement is under way.
   */
  readonly answer?: string | undefined;
  readonly answerShown?: string | undefined;
  /** The sequence of the per-recipient update the copy shows (store/recipient-overrides.ts). */
  readonly override?: number | undefined;
  /** The recipient's button clicks, one per verb, in order (notifications/card-clicks.ts). */
  readonly actions?: readonly RecordedAction[] | undefined;
  /**
   * The events this row's transitions reported, in order (stored-events.ts): each written by the
   * transition's own conditional write, then published.
   */
  readonly events?: readonly CloudEvent[] | undefined;
  /** The row's ETag: updates are conditional on it. */
  readonly etag: string;
}

/** Fields an update may change. `undefined` clears a field. */
export type DeliveryPatch = Partial<
  Omit<Delivery, "tenantId" | "requestId" | "recipientKey" | "recipient" | "createdAt" | "etag">
>;

/** A row as stored: the recipient as its kind and value, the keys; the rest field for field. */
type DeliveryEntity = Omit<Delivery, "recipient" | "recipientKey" | "etag" | "events"> & {
  partitionKey: string;
  rowKey: string;
  recipientKind: string;
  recipientValue: string;
  eventsJson?: string;
  actionsJson?: string;
};

export interface NewDelivery {
  readonly recipientKey: string;
  readonly recipient: Recipient;
  /** Default `pending`; a final state records an outcome known up front (unknown team…). */
  readonly state?: DeliveryState;
  readonly lastError?: string;
  /** The events of a row created final (its transition is its creation). */
  readonly events?: readonly CloudEvent[];
  /** Who the recipient is, when known before delivery (Graph's names of a group's members). */
  readonly userPrincipalName?: string | undefined;
  readonly displayName?: string | undefined;
}

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
    if (rows.length === 0) return 0;
    const table = await this.table();
    const entities = rows.map((row) =>
      toEntity({
        ...this.fresh(request, row.recipientKey, row.recipient, row.state ?? "pending"),
        lastError: row.lastError,
        events: row.events,
        userPrincipalName: clipped(row.userPrincipalName),
        displayName: clipped(row.displayName),
      }),
    );
    const counts = await mapLimited(
      chunks(entities, TRANSACTION_SIZE),
      WRITE_CONCURRENCY,
      async (chunk) => {
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
      },
    );
    return counts.reduce((a, b) => a + b, 0);
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
  ): Omit<Delivery, "etag"> {
    const stamp = this.clock().toISOString();
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
