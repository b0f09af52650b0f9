import { createHash } from "node:crypto";

import type { TableClient } from "@azure/data-tables";

import type { NotificationMessage } from "../model/message";
import { withoutUndefined, writtenRow } from "./entities";
import { joinTextParts, textParts } from "./limits";
import { type RequestKey, requestPartitionKey, requestRowKey } from "./notification-requests";
import { isRestError, type TableFactory, TABLES } from "./table-factory";

/**
 * One person's own content of a request (`PATCH /api/notifications/{id}/recipients/{recipient}`),
 * one row per request and recipient beside the request's row in `Requests`:
 *
 *   Requests  PK = encodeKey(id)  RK = <the request's row key> + "~override~" + hash(recipientKey)
 *
 * The hash keeps the key short whatever the recipient key's length (keys are capped at 512
 * characters locally, 1 KiB in Azure). The message may be 80 KB, more than one string property
 * holds (64 KiB as UTF-16), so it is stored in parts like the request's own (limits.ts); the
 * entity stays far below Table Storage's 1 MiB. A later override of the same copy replaces the
 * row with the next `sequence`, ETag-conditional, so two concurrent ones get their own numbers.
 */
export interface RecipientOverride {
  readonly recipientKey: string;
  /** 1 for the copy's first override, one more for each later one. */
  readonly sequence: number;
  /** The request's revision when the override was accepted: a later revision supersedes it. */
  readonly revision: number;
  readonly message: NotificationMessage;
  readonly summary?: string | undefined;
  /** Of message and summary: the same content again is a replay, not a new override. */
  readonly fingerprint: string;
  readonly acceptedAt: string;
  readonly etag: string;
}

export type NewRecipientOverride = Omit<RecipientOverride, "etag">;

interface OverrideEntity {
  partitionKey: string;
  rowKey: string;
  /** Tells override rows from request rows in a partition query. */
  kind: "override";
  recipientKey: string;
  sequence: number;
  revision: number;
  summary?: string;
  fingerprint: string;
  acceptedAt: string;
}

function overrideRowKey(request: RequestKey, recipientKey: string): string {
  const digest = createHash("sha256").update(recipientKey).digest("base64url").slice(0, 32);
  return `${requestRowKey(request)}~override~${digest}`;
}

function toEntity(request: RequestKey, override: NewRecipientOverride): OverrideEntity {
  return withoutUndefined({
    ...textParts("messageJson", JSON.stringify(override.message)),
    partitionKey: requestPartitionKey(request.id),
    rowKey: overrideRowKey(request, override.recipientKey),
    kind: "override" as const,
    recipientKey: override.recipientKey,
    sequence: override.sequence,
    revision: override.revision,
    summary: override.summary,
    fingerprint: override.fingerprint,
    acceptedAt: override.acceptedAt,
  });
}

function fromEntity(entity: Record<string, unknown>, etag: string): RecipientOverride {
  const message = joinTextParts("messageJson", entity);
  return withoutUndefined({
    recipientKey: String(entity.recipientKey),
    sequence: Number(entity.sequence),
    revision: Number(entity.revision),
    message: JSON.parse(message ?? "{}") as NotificationMessage,
    summary: typeof entity.summary === "string" ? entity.summary : undefined,
    fingerprint: String(entity.fingerprint),
    acceptedAt: String(entity.acceptedAt),
    etag,
  });
}

export class RecipientOverrideStore {
  constructor(private readonly tables: TableFactory) {}

  /** The copy's latest override; undefined when it has none. */
  async get(request: RequestKey, recipientKey: string): Promise<RecipientOverride | undefined> {
    const table = await this.table();
    try {
      const { etag, ...entity } = await table.getEntity<Record<string, unknown>>(
        requestPartitionKey(request.id),
        overrideRowKey(request, recipientKey),
      );
      return fromEntity(entity, etag);
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  /**
   * Writes `next` in place of `current` (the row as read, or undefined when there was none):
   * an insert, or a replace conditional on its ETag; `conflict` when another override was
   * written first (read again and decide).
   */
  async put(
    request: RequestKey,
    next: NewRecipientOverride,
    current: RecipientOverride | undefined,
  ): Promise<RecipientOverride | "conflict"> {
    const table = await this.table();
    const entity = toEntity(request, next);
    try {
      const response =
        current === undefined
          ? await table.createEntity(entity)
          : await table.updateEntity(entity, "Replace", { etag: current.etag });
      return writtenRow(next, response.etag);
    } catch (error) {
      if (isRestError(error, 409) || isRestError(error, 412) || isRestError(error, 404))
        return "conflict";
      throw error;
    }
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.requests);
  }
}
