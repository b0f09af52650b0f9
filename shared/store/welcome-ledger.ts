import { randomUUID } from "node:crypto";

import type { TableClient } from "@azure/data-tables";

import { withoutUndefined } from "./entities";
import { claimLeasedRow, leaseLive } from "./leased-claim";
import { encodeKey, isRestError, type TableFactory, TABLES } from "./table-factory";

/**
 * The once-only welcome ledger (DESIGN.md flow 2).
 *
 * Key design: Welcomes  PK = encodeKey(tenantId, lower-cased)
 *                       RK = "user|" + encodeKey(teamsUserId)   (personal welcome)
 *                          | "team|" + encodeKey(teamId)        (team welcome)
 *                       RK = "installed|" + encodeKey(aadObjectId, lower-cased)
 *                                                       (Herald installed its app for the user)
 * The `29:` id is stable per user and bot, so uninstall + reinstall finds the same row; rows
 * are never deleted.
 *
 * A user Herald installed its app for (proactive install, to deliver a notification) gets the
 * notification and no welcome: the welcome is for a user who opens the chat with the bot. The
 * install is noted by AAD object id before Graph is asked (the `29:` id is not known yet) and
 * settled once Graph answered; the welcome that the install's events queue finds the note and
 * records the welcome `skipped` with that reason instead of sending (see `heraldInstalled`).
 *
 * Protocol:
 * 1. claim: conditional insert `{ state: claimed, owner, leaseUntil }`. Only one writer can
 *    create the row; everyone else gets 409 and reads it: `sent` = done, `claimed` with a live
 *    lease = someone else is sending (do nothing).
 * 2. the owner sends the welcome, then completes with an ETag-conditional update to
 *    `{ state: sent, sentAt, activityId }`.
 * 3. a claim whose lease expired (its sender died between claim and send) or that was
 *    released (the send failed) is taken over with an ETag-conditional update: of several
 *    instances trying at once exactly one succeeds, the rest get 412.
 * Nobody has to come back for step 3: every claim schedules a `welcome-check` work item for
 * its lease end (welcomes.ts), which takes an expired or released claim over and sends.
 * The one window left is a sender that dies after Teams accepted the welcome and before step 2
 * lands: after the lease the welcome goes out again. The lease is far longer than a send
 * (default 120 s) so a slow sender is never overtaken by a second one.
 */

export type WelcomeSubject =
  | { scope: "personal"; tenantId: string; teamsUserId: string }
  | { scope: "team"; tenantId: string; teamId: string };

export type WelcomeState = "claimed" | "released" | "sent" | "skipped";

export interface WelcomeRecord {
  state: WelcomeState;
  owner: string;
  claimedAt: string;
  leaseUntil: string;
  attempts: number;
  sentAt?: string;
  activityId?: string;
  conversationId?: string;
  lastError?: string;
  /** `skipped`: why no welcome goes out. */
  reason?: string;
  /** `skipped` for a Herald install: the notification it was installed for. */
  requestId?: string;
}

/**
 * Herald's note that it is installing (or installed) its app for a user. `installing` is
 * written before Graph is asked, so the welcome that the install's events queue (which may come
 * before Graph's answer) finds it; `installed` after Graph's 201 or 409; `failed` when the
 * install was refused (the user was never installed for, so their own install later welcomes).
 */
export interface HeraldInstall {
  readonly state: "installing" | "installed" | "failed";
  readonly requestId: string;
  readonly notedAt: string;
}

/**
 * A note still `installing` after this long is an install that never finished (a crash, retries
 * given up): it no longer stands in the way of a welcome. Longer than proactive install's wait
 * for the chat (10 minutes), after which the delivery gives up.
 */
export const HERALD_INSTALL_NOTE_TTL_MS = 15 * 60 * 1000;

/** Whether a note means the user was (or is being) installed for by Herald, at `now`. */
export function heraldInstalled(note: HeraldInstall | undefined, now: Date): boolean {
  if (note === undefined || note.state === "failed") return false;
  if (note.state === "installed") return true;
  const at = Date.parse(note.notedAt);
  return Number.isFinite(at) && now.getTime() - at < HERALD_INSTALL_NOTE_TTL_MS;
}

export interface WelcomeClaim {
  readonly subject: WelcomeSubject;
  readonly owner: string;
  readonly etag: string;
  readonly attempt: number;
  /** When the claim's lease ends: after it, another sender may take the welcome over. */
  readonly leaseUntil: string;
  /** True when this claim recovered an expired or released one. */
  readonly takenOver: boolean;
}

export type ClaimOutcome =
  | { kind: "claimed"; claim: WelcomeClaim }
  | { kind: "sent"; record: WelcomeRecord }
  | { kind: "busy"; record: WelcomeRecord };

export interface WelcomeLedgerOptions {
  leaseMs: number;
  clock?: () => Date;
}

interface WelcomeEntity extends WelcomeRecord {
  partitionKey: string;
  rowKey: string;
}

/** The welcome is done: sent, or deliberately not sent. */
export function welcomeDone(record: WelcomeRecord): boolean {
  return record.state === "sent" || record.state === "skipped";
}

function installKeys(tenantId: string, aadObjectId: string) {
  return {
    partitionKey: encodeKey(tenantId.toLowerCase()),
    rowKey: `installed|${encodeKey(aadObjectId.toLowerCase())}`,
  };
}

export function welcomeKeys(subject: WelcomeSubject): { partitionKey: string; rowKey: string } {
  return {
    partitionKey: encodeKey(subject.tenantId.toLowerCase()),
    rowKey:
      subject.scope === "personal"
        ? `user|${encodeKey(subject.teamsUserId)}`
        : `team|${encodeKey(subject.teamId)}`,
  };
}

export class WelcomeLedger {
  private readonly leaseMs: number;
  private readonly clock: () => Date;

  constructor(
    private readonly tables: TableFactory,
    options: WelcomeLedgerOptions,
  ) {
    this.leaseMs = options.leaseMs;
    this.clock = options.clock ?? (() => new Date());
  }

  async get(subject: WelcomeSubject): Promise<WelcomeRecord | undefined> {
    return (await this.read(await this.table(), subject))?.record;
  }

  /** Tries to become the one sender of this welcome. */
  async claim(subject: WelcomeSubject): Promise<ClaimOutcome> {
    const table = await this.table();
    const owner = randomUUID();
    const result = await claimLeasedRow<WelcomeEntity, WelcomeRecord>({
      table,
      clock: this.clock,
      row: (now, attempts, previous) =>
        withoutUndefined({
          ...welcomeKeys(subject),
          state: "claimed" as const,
          owner,
          claimedAt: now.toISOString(),
          leaseUntil: new Date(now.getTime() + this.leaseMs).toISOString(),
          attempts,
          lastError: previous?.lastError,
        }),
      read: () => this.read(table, subject),
      takeable: (record, now) =>
        record.state === "released" || (record.state === "claimed" && !leaseLive(record, now)),
    });
    if (result.kind === "held") {
      const { record } = result;
      return welcomeDone(record) ? { kind: "sent", record } : { kind: "busy", record };
    }
    const { etag, attempt, takenOver, entity } = result;
    return {
      kind: "claimed",
      claim: { subject, owner, etag, attempt, leaseUntil: entity.leaseUntil, takenOver },
    };
  }

  /**
   * Records the welcome as sent. "lost" means the lease ran out and another instance took
   * the claim over while this one was sending: the user may have two welcomes; logged by the
   * caller so an operator can raise the lease.
   */
  async complete(
    claim: WelcomeClaim,
    sent: { activityId?: string | undefined; conversationId: string },
  ): Promise<"completed" | "lost"> {
    const table = await this.table();
    const now = this.clock().toISOString();
    try {
      await table.updateEntity<WelcomeEntity>(
        withoutUndefined({
          ...welcomeKeys(claim.subject),
          state: "sent" as const,
          owner: claim.owner,
          claimedAt: now,
          leaseUntil: now,
          attempts: claim.attempt,
          sentAt: now,
          activityId: sent.activityId,
          conversationId: sent.conversationId,
        }),
        "Replace",
        { etag: claim.etag },
      );
      return "completed";
    } catch (error) {
      if (isRestError(error, 412)) return "lost";
      throw error;
    }
  }

  /**
   * Gives the claim back after a failed send, so the next activity from the user (or the team),
   * or the scheduled welcome check, retries without waiting for the lease. Losing the race here
   * is harmless.
   */
  async release(claim: WelcomeClaim, reason: string): Promise<void> {
    const table = await this.table();
    const now = this.clock().toISOString();
    try {
      await table.updateEntity<WelcomeEntity>(
        {
          ...welcomeKeys(claim.subject),
          state: "released",
          owner: claim.owner,
          claimedAt: now,
          leaseUntil: now,
          attempts: claim.attempt,
          lastError: reason.slice(0, 500),
        },
        "Replace",
        { etag: claim.etag },
      );
    } catch (error) {
      if (!isRestError(error, 412)) throw error;
    }
  }

  /**
   * Notes Herald's install for this user: `installing` before Graph is asked, then `installed`
   * or `failed` once Graph answered. An `installed` note is never taken back.
   */
  async noteHeraldInstall(
    tenantId: string,
    aadObjectId: string,
    state: HeraldInstall["state"],
    requestId: string,
  ): Promise<void> {
    const table = await this.table();
    const keys = installKeys(tenantId, aadObjectId);
    const note = { ...keys, state, requestId, notedAt: this.clock().toISOString() };
    if (state === "installed") {
      await table.upsertEntity(note, "Replace");
      return;
    }
    const current = await this.readInstall(table, keys);
    // A note of another install that succeeded stands; anything else is replaced by this one.
    if (current?.note.state === "installed") return;
    try {
      if (current === undefined) await table.createEntity(note);
      else await table.updateEntity(note, "Replace", { etag: current.etag });
    } catch (error) {
      // Someone wrote it meanwhile (a concurrent copy of this install): theirs stands.
      if (!isRestError(error, 409) && !isRestError(error, 412)) throw error;
    }
  }

  /** Herald's note of its install for this user, if any. */
  async heraldInstallOf(tenantId: string, aadObjectId: string): Promise<HeraldInstall | undefined> {
    return (await this.readInstall(await this.table(), installKeys(tenantId, aadObjectId)))?.note;
  }

  private async readInstall(
    table: TableClient,
    keys: { partitionKey: string; rowKey: string },
  ): Promise<{ note: HeraldInstall; etag: string } | undefined> {
    try {
      const entity = await table.getEntity<{
        state?: unknown;
        requestId?: unknown;
        notedAt?: unknown;
      }>(keys.partitionKey, keys.rowKey);
      const state =
        entity.state === "installed" || entity.state === "failed" ? entity.state : "installing";
      return {
        note: {
          state,
          requestId: typeof entity.requestId === "string" ? entity.requestId : "",
          notedAt: typeof entity.notedAt === "string" ? entity.notedAt : "",
        },
        etag: entity.etag,
      };
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  /**
   * Records that this welcome will not be sent, and why. "exists" when the welcome already has
   * a row (sent, or claimed by a sender): that one stands.
   */
  async skip(
    subject: WelcomeSubject,
    reason: string,
    requestId?: string,
  ): Promise<"skipped" | "exists"> {
    const table = await this.table();
    const now = this.clock().toISOString();
    try {
      await table.createEntity<WelcomeEntity>(
        withoutUndefined({
          ...welcomeKeys(subject),
          state: "skipped" as const,
          owner: "",
          claimedAt: now,
          leaseUntil: now,
          attempts: 0,
          reason: reason.slice(0, 500),
          requestId,
        }),
      );
      return "skipped";
    } catch (error) {
      if (isRestError(error, 409)) return "exists";
      throw error;
    }
  }

  private async read(
    table: TableClient,
    subject: WelcomeSubject,
  ): Promise<{ record: WelcomeRecord; etag: string } | undefined> {
    const { partitionKey, rowKey } = welcomeKeys(subject);
    try {
      const entity = await table.getEntity<WelcomeEntity>(partitionKey, rowKey);
      const {
        etag,
        timestamp: _t,
        partitionKey: _p,
        rowKey: _r,
        ...record
      } = entity as WelcomeEntity & { etag: string; timestamp?: string };
      return { record: { ...record, attempts: Number(record.attempts) || 1 }, etag };
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.welcomes);
  }
}
