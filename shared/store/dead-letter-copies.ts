import type { TableClient } from "@azure/data-tables";

import { withoutUndefined } from "./entities";
import { joinTextParts, textParts } from "./limits";
import { encodeKey, isRestError, odata, type TableFactory, TABLES } from "./table-factory";

/**
 * Copies of dead-lettered messages, kept for the operator after the dead-letter reader has
 * recorded what they mean (a bound trigger completes the message it reads, so the broker no
 * longer holds it).
 *
 *   DeadLetters  PK = encodeKey(queue name)  RK = encodeKey(message id) + "|" + sequence
 *
 * The body (a message is at most 256 KB on Standard) is kept whole, in parts (limits.ts).
 */
export interface DeadLetterCopy {
  readonly queueName: string;
  readonly messageId: string;
  /** The broker's sequence number, or "" when unknown: tells apart copies of one message id. */
  readonly sequence: string;
  readonly sessionId?: string | undefined;
  readonly correlationId?: string | undefined;
  readonly reason: string;
  readonly description: string;
  readonly deliveryCount: number;
  readonly applicationProperties: Readonly<Record<string, unknown>>;
  readonly body: unknown;
  readonly recordedAt: string;
  /** What the reader recorded for it (e.g. "delivery failed", "request failed"). */
  readonly outcome: string;
}

type CopyEntity = Record<string, unknown> & { partitionKey: string; rowKey: string };

export class DeadLetterCopies {
  constructor(private readonly tables: TableFactory) {}

  /** Keeps the copy; a second copy of the same message (a redelivered read) replaces the first. */
  async keep(copy: DeadLetterCopy): Promise<void> {
    const table = await this.table();
    const entity: CopyEntity = withoutUndefined({
      partitionKey: encodeKey(copy.queueName),
      rowKey: `${encodeKey(copy.messageId)}|${encodeKey(copy.sequence)}`,
      queueName: copy.queueName,
      messageId: copy.messageId,
      sequence: copy.sequence,
      sessionId: copy.sessionId,
      correlationId: copy.correlationId,
      reason: copy.reason,
      description: copy.description,
      deliveryCount: copy.deliveryCount,
      recordedAt: copy.recordedAt,
      outcome: copy.outcome,
      ...textParts("applicationPropertiesJson", JSON.stringify(copy.applicationProperties)),
      ...textParts("bodyJson", JSON.stringify(copy.body) ?? "null"),
    });
    await table.upsertEntity(entity, "Replace");
  }

  /** The copies kept for a queue, oldest key first. */
  async list(queueName: string, max = 1_000): Promise<DeadLetterCopy[]> {
    const table = await this.table();
    const found: DeadLetterCopy[] = [];
    const rows = table.listEntities<CopyEntity>({
      queryOptions: { filter: odata`PartitionKey eq ${encodeKey(queueName)}` },
    });
    try {
      for await (const row of rows) {
        found.push(fromEntity(row));
        if (found.length >= max) break;
      }
    } catch (error) {
      if (!isRestError(error, 404)) throw error;
    }
    return found;
  }

  private table(): Promise<TableClient> {
    return this.tables.table(TABLES.deadLetters);
  }
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function parsed(json: string | undefined): unknown {
  if (json === undefined) return undefined;
  try {
    return JSON.parse(json) as unknown;
  } catch {
    return json;
  }
}

function fromEntity(row: CopyEntity): DeadLetterCopy {
  const properties = parsed(joinTextParts("applicationPropertiesJson", row));
  return withoutUndefined({
    queueName: text(row.queueName),
    messageId: text(row.messageId),
    sequence: text(row.sequence),
    sessionId: typeof row.sessionId === "string" ? row.sessionId : undefined,
    correlationId: typeof row.correlationId === "string" ? row.correlationId : undefined,
    reason: text(row.reason),
    description: text(row.description),
    deliveryCount: Number(row.deliveryCount) || 0,
    applicationProperties:
      typeof properties === "object" && properties !== null
        ? (properties as Record<string, unknown>)
        : {},
    body: parsed(joinTextParts("bodyJson", row)),
    recordedAt: text(row.recordedAt),
    outcome: text(row.outcome),
  });
}
