import type { TableEntity } from "@azure/data-tables";

import { withoutUndefined } from "./entities";
import { storedIdentity, storedName } from "./limits";
import { encodeKey } from "./table-factory";

/**
 * What Herald knows about a Teams user (a user reference), and the pure rules by which one more
 * observation (an activity, a roster page, a member lookup) changes it: which status it leads to,
 * which fields the newest sighting replaces, which index rows it needs. No I/O here: the store
 * (user-references.ts) reads, applies these rules and writes with ETags.
 */

export type UserStatus = "active" | "uninstalled" | "removed" | "unreachable";
export type LearnedFrom = "personal" | "team" | "message" | "roster";

export interface UserReference {
  tenantId: string;
  teamsUserId: string;
  aadObjectId?: string;
  name?: string;
  userPrincipalName?: string;
  email?: string;
  serviceUrl: string;
  conversationId?: string;
  learnedFrom: LearnedFrom;
  status: UserStatus;
  statusReason?: string;
  createdAt: string;
  updatedAt: string;
}

/** What one activity, roster page or member lookup told us about a user. */
export interface UserObservation {
  tenantId: string;
  teamsUserId: string;
  aadObjectId?: string | undefined;
  name?: string | undefined;
  userPrincipalName?: string | undefined;
  email?: string | undefined;
  serviceUrl: string;
  /** The personal (1:1) conversation id, when this observation knows it. */
  conversationId?: string | undefined;
  learnedFrom: LearnedFrom;
  /**
   * When the service URL was observed (default: now). A service URL observed earlier than the
   * stored one never replaces it (a queued roster sync must not undo a fresher activity).
   */
  observedAt?: Date | undefined;
}

export interface UserEntity extends UserReference {
  partitionKey: string;
  rowKey: string;
  serviceUrlObservedAt: string;
  statusChangedAt?: string;
}

/**
 * Which source says the most about a user; the strongest one seen is kept in `learnedFrom`
 * ("personal" means the user installed the app or chatted with it 1:1).
 */
const SOURCE_RANK: Record<LearnedFrom, number> = { roster: 0, team: 1, message: 2, personal: 3 };

/**
 * Teams' 403 for a bot that is no longer in the conversation's roster
 * (https://learn.microsoft.com/microsoftteams/platform/bots/build-conversational-capability#status-codes-from-bot-conversational-apis):
 * a verdict about the bot's membership, which a later roster sync (the bot was added back)
 * overturns. Delivery records the code as the reason; the relay prefixes it.
 */
const BOT_NOT_IN_ROSTER = /\bBotNotInConversationRoster\b/;

/**
 * The status an observation leads to. The user's own contact (personal install, a message)
 * makes a reference active again whatever it was. Seeing the user in a team (a roster sync, a
 * member-added event) makes a "removed" reference active, and an "unreachable" one whose
 * reason was BotNotInConversationRoster (seeing the roster means the bot is back in it), but
 * does not override "uninstalled" or any other "unreachable": those record the user's choice
 * or a verdict of Teams that team membership says nothing about.
 */
function nextStatus(
  current: UserStatus | undefined,
  reason: string | undefined,
  source: LearnedFrom,
): UserStatus {
  if (current === undefined || current === "active") return "active";
  if (source === "personal" || source === "message") return "active";
  if (current === "unreachable" && BOT_NOT_IN_ROSTER.test(reason ?? "")) return "active";
  return current === "removed" ? "active" : current;
}

/** When an observation was made, in ms; a missing or invalid time counts as `now`. */
export function observedTime(o: UserObservation, now: Date): number {
  const at = o.observedAt?.getTime();
  return at === undefined || !Number.isFinite(at) ? now.getTime() : at;
}

/** A stored ISO time in ms; missing or unreadable counts as the oldest possible. */
function storedTime(iso: string | undefined): number {
  const at = iso === undefined ? NaN : Date.parse(iso);
  return Number.isFinite(at) ? at : -Infinity;
}

export function userPartitionKey(tenantId: string): string {
  return encodeKey(tenantId.toLowerCase());
}

export function userRowKey(teamsUserId: string): string {
  return encodeKey(teamsUserId);
}

export function aadIndexKey(aadObjectId: string): string {
  return `aad|${encodeKey(aadObjectId.toLowerCase())}`;
}

export function upnIndexKey(upn: string): string {
  return `upn|${encodeKey(upn.toLowerCase())}`;
}

export function sameText(a: string | undefined, b: string | undefined): boolean {
  return (a ?? "").toLowerCase() === (b ?? "").toLowerCase();
}

function blankToUndefined(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}

export function toReference(entity: UserEntity): UserReference {
  const record = entity as unknown as Record<string, unknown>;
  const text = (name: string): string | undefined => {
    const value = record[name];
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  return withoutUndefined({
    tenantId: text("tenantId") ?? "",
    teamsUserId: text("teamsUserId") ?? "",
    aadObjectId: text("aadObjectId"),
    name: text("name"),
    userPrincipalName: text("userPrincipalName"),
    email: text("email"),
    serviceUrl: text("serviceUrl") ?? "",
    conversationId: text("conversationId"),
    learnedFrom: (text("learnedFrom") ?? "message") as LearnedFrom,
    status: (text("status") ?? "active") as UserStatus,
    statusReason: text("statusReason"),
    createdAt: text("createdAt") ?? "",
    updatedAt: text("updatedAt") ?? "",
  });
}

export interface Stored {
  entity: UserEntity;
  etag: string;
}

/** The entity an observation turns `existing` (or nothing) into; `changed` false = skip the write. */
export function merge(
  existing: Stored | undefined,
  o: UserObservation,
  now: Date,
): { entity: UserEntity; changed: boolean } {
  const observedMs = observedTime(o, now);
  const observedAt = new Date(observedMs).toISOString();
  const stamp = now.toISOString();
  const name = storedName(blankToUndefined(o.name));
  const userPrincipalName = storedIdentity(blankToUndefined(o.userPrincipalName));
  const email = storedIdentity(blankToUndefined(o.email));
  const aadObjectId = blankToUndefined(o.aadObjectId)?.toLowerCase();
  const base = {
    partitionKey: userPartitionKey(o.tenantId),
    rowKey: userRowKey(o.teamsUserId),
    tenantId: o.tenantId.toLowerCase(),
    teamsUserId: o.teamsUserId,
  };
  if (existing === undefined) {
    return {
      changed: true,
      entity: withoutUndefined({
        ...base,
        aadObjectId,
        name,
        userPrincipalName,
        email,
        serviceUrl: o.serviceUrl,
        serviceUrlObservedAt: observedAt,
        conversationId: blankToUndefined(o.conversationId),
        learnedFrom: o.learnedFrom,
        status: "active",
        createdAt: stamp,
        updatedAt: stamp,
      }),
    };
  }
  const old = existing.entity;
  // The newest observation wins (a roster sync that runs late must not undo a fresher
  // activity); an older one only fills in what is not known yet.
  const newer = observedMs >= storedTime(old.serviceUrlObservedAt);
  const pick = (seen: string | undefined, kept: string | undefined) =>
    newer ? (seen ?? kept) : (kept ?? seen);
  const status = nextStatus(old.status, old.statusReason, o.learnedFrom);
  const next: UserEntity = withoutUndefined({
    ...old,
    ...base,
    aadObjectId: pick(aadObjectId, old.aadObjectId),
    name: pick(name, old.name),
    userPrincipalName: pick(userPrincipalName, old.userPrincipalName),
    email: pick(email, old.email),
    serviceUrl: newer ? o.serviceUrl : old.serviceUrl,
    serviceUrlObservedAt: newer ? observedAt : old.serviceUrlObservedAt,
    conversationId: blankToUndefined(o.conversationId) ?? old.conversationId,
    learnedFrom:
      SOURCE_RANK[o.learnedFrom] > SOURCE_RANK[old.learnedFrom] ? o.learnedFrom : old.learnedFrom,
    status,
    statusReason: status === old.status ? old.statusReason : undefined,
    statusChangedAt: status === old.status ? old.statusChangedAt : stamp,
  });
  const meaningful: (keyof UserEntity)[] = [
    "aadObjectId",
    "name",
    "userPrincipalName",
    "email",
    "serviceUrl",
    "conversationId",
    "learnedFrom",
    "status",
  ];
  const changed = meaningful.some((k) => next[k] !== old[k]);
  // The service URL's observation time alone is not worth a write.
  return { entity: changed ? { ...next, updatedAt: stamp } : old, changed };
}

/**
 * What the AAD index row carries of the reference besides its Teams id: what a send needs (the
 * service URL, the 1:1 chat, the status), so the steady path finds a user named by AAD id in one
 * read. Names, UPN and e-mail are not copied. The reference stays the record: the copy is
 * rewritten with every write of these fields and trusted only for an active user's first try.
 */
const ROUTE_FIELDS = [
  "tenantId",
  "aadObjectId",
  "serviceUrl",
  "conversationId",
  "learnedFrom",
  "status",
  "createdAt",
  "updatedAt",
] as const;

function routeChanged(next: UserEntity, old: UserEntity): boolean {
  return ROUTE_FIELDS.some((k) => k !== "updatedAt" && next[k] !== old[k]);
}

/** The AAD index row of an entity, with its route copy. */
export function aadIndexRow(entity: UserEntity & { aadObjectId: string }): TableEntity {
  const row: TableEntity = {
    partitionKey: entity.partitionKey,
    rowKey: aadIndexKey(entity.aadObjectId),
    teamsUserId: entity.teamsUserId,
  };
  for (const k of ROUTE_FIELDS) if (entity[k] !== undefined) row[k] = entity[k];
  return row;
}

/**
 * The reference an AAD index row's copy gives, when it has one of an active user (a row written
 * before the copy existed, or of a user not active, gives none: the reference is read).
 */
export function referenceFromIndexRow(row: Record<string, unknown>): UserReference | undefined {
  const text = (k: string) => (typeof row[k] === "string" && row[k] !== "" ? row[k] : undefined);
  const teamsUserId = text("teamsUserId");
  const serviceUrl = text("serviceUrl");
  if (teamsUserId === undefined || serviceUrl === undefined || text("status") !== "active")
    return undefined;
  return withoutUndefined({
    tenantId: text("tenantId") ?? "",
    teamsUserId,
    aadObjectId: text("aadObjectId"),
    serviceUrl,
    conversationId: text("conversationId"),
    learnedFrom: (text("learnedFrom") ?? "message") as LearnedFrom,
    status: "active" as const,
    createdAt: text("createdAt") ?? "",
    updatedAt: text("updatedAt") ?? "",
  });
}

/**
 * Index rows the new entity needs: the ones the old one did not have, and the AAD row again
 * whenever its route copy changes.
 */
export function indexRowsFor(next: UserEntity, old: UserEntity | undefined): TableEntity[] {
  const rows: TableEntity[] = [];
  const aadObjectId = next.aadObjectId;
  if (
    aadObjectId !== undefined &&
    (old === undefined || old.aadObjectId !== aadObjectId || routeChanged(next, old))
  )
    rows.push(aadIndexRow({ ...next, aadObjectId }));
  // An id the reference no longer has keeps its row, without the copy: a first try by it reads
  // the reference, which does not answer to it, instead of sending to this user.
  if (old?.aadObjectId !== undefined && !sameText(old.aadObjectId, aadObjectId))
    rows.push({
      partitionKey: next.partitionKey,
      rowKey: aadIndexKey(old.aadObjectId),
      teamsUserId: next.teamsUserId,
    });
  if (
    next.userPrincipalName !== undefined &&
    (old === undefined || !sameText(old.userPrincipalName, next.userPrincipalName))
  )
    rows.push({
      partitionKey: next.partitionKey,
      rowKey: upnIndexKey(next.userPrincipalName),
      teamsUserId: next.teamsUserId,
    });
  return rows;
}
