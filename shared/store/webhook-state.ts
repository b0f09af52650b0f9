import { createHash } from "node:crypto";

import type { TableClient } from "@azure/data-tables";

import { readEntity } from "./entities";
import { type RequestKey, requestRowKey } from "./notification-requests";
import { encodeKey, isRestError, type TableFactory, TABLES } from "./table-factory";

/**
 * What the webhook has been sent, and whether it is still on.
 *
 *   Webhooks  PK = requestRowKey(tenant, id)  RK = encodeKey(stream)  -> { posted }
 *             PK = "~endpoints"               RK = hash of the URL     -> { disabledAt, status }
 *
 * `posted` counts a row's events (a recipient's, or the request's own) the webhook answered 2xx,
 * in order: its work items post from there, so the receiver gets each row's events in order. A
 * webhook that answered 410 Gone is off until its URL changes (another row) or the row is deleted.
 */
const ENDPOINTS = "~endpoints";

export interface Cursor {
  readonly posted: number;
  readonly etag?: string | undefined;
}

export interface DisabledWebhook {
  readonly disabledAt: string;
  readonly status: number;
  readonly origin: string;
}

/** The URL's key: its hash, so neither a path nor a query string is stored. */
export function webhookKey(url: string): string {
  return createHash("sha256").update(url).digest("hex").slice(0, 32);
}

export class WebhookState {
  constructor(private readonly tables: TableFactory) {}

  async cursor(request: RequestKey, stream: string): Promise<Cursor> {
    const found = await readEntity<{ posted?: unknown }>(
      await this.table(),
      requestRowKey(request),
      encodeKey(stream),
    );
    if (found === undefined) return { posted: 0 };
    const posted = Number(found.entity.posted);
    return { posted: Number.isInteger(posted) && posted > 0 ? posted : 0, etag: found.etag };
  }

  /** Moves the cursor to `posted` unless it is further already (two items raced). */
  async advance(request: RequestKey, stream: string, from: Cursor, posted: number): Promise<void> {
    const table = await this.table();
    const key = { partitionKey: requestRowKey(request), rowKey: encodeKey(stream) };
    let current = from;
    for (let attempt = 0; attempt < 5 && posted > current.posted; attempt++) {
      try {
        if (current.etag === undefined) await table.createEntity({ ...key, posted });
        else await table.updateEntity({ ...key, posted }, "Replace", { etag: current.etag });
        return;
      } catch (error) {
        if (!isRestError(error, 409) && !isRestError(error, 412)) throw error;
      }
      current = await this.cursor(request, stream);
    }
  }

  async disabled(url: string): Promise<DisabledWebhook | undefined> {
    const found = await readEntity<Partial<DisabledWebhook>>(
      await this.table(),
      ENDPOINTS,
      webhookKey(url),
    );
    const entity = found?.entity;
    return entity?.disabledAt === undefined
      ? undefined
      : {
          disabledAt: String(entity.disabledAt),
          status: Number(entity.status),
          origin: String(entity.origin),
        };
  }

  async disable(url: string, state: DisabledWebhook): Promise<void> {
    const table = await this.table();
    await table.upsertEntity(
      { partitionKey: ENDPOINTS, rowKey: webhookKey(url), ...state },
      "Replace",
    );
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.webhooks);
  }
}
