/**
 * The claim check: a request's recipients are stored beside its row before a reference to it is
 * queued, so a request of any size the schema allows (10,000 recipients is about 550 KB) never
 * has to fit one queue message (Service Bus Standard: 256 KB). Table Storage caps a string
 * property at 64 KiB (32 K UTF-16 characters) and an entity at 1 MiB, so the JSON is cut into
 * properties of `CHUNK_CHARS` characters, `CHUNKS_PER_ROW` to a row, rows keyed `<rk>~body~<n>`
 * in the request's own partition: one transaction writes them with the request row.
 */
const CHUNK_CHARS = 30_000;
const CHUNKS_PER_ROW = 15;
/** Azure Table transactions: at most 100 operations in one partition, 4 MiB. */
export const MAX_BODY_ROWS = 8;
/**
 * A body this small (one recipient, or a few) rides in the request row: one conditional insert
 * instead of a transaction, which the Tables SDK runs through a client and pipeline of its own.
 */
export const INLINE_BODY_CHARS = 4_000;

export function bodyRowKey(requestRowKey: string, row: number): string {
  return `${requestRowKey}~body~${String(row).padStart(3, "0")}`;
}

export function bodyRows(
  partitionKey: string,
  requestRowKey: string,
  json: string,
): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  const rowChars = CHUNK_CHARS * CHUNKS_PER_ROW;
  for (let start = 0, row = 0; start < json.length || row === 0; start += rowChars, row++) {
    const part = json.slice(start, start + rowChars);
    const entity: Record<string, unknown> = {
      partitionKey,
      rowKey: bodyRowKey(requestRowKey, row),
      chunks: Math.ceil(part.length / CHUNK_CHARS),
    };
    for (let c = 0; c * CHUNK_CHARS < part.length; c++)
      entity[`c${c}`] = part.slice(c * CHUNK_CHARS, (c + 1) * CHUNK_CHARS);
    rows.push(entity);
  }
  if (rows.length > MAX_BODY_ROWS)
    throw new Error(`request body of ${json.length} characters is too large to store`);
  return rows;
}

/** The part of the body one stored row holds. */
export function bodyRowText(entity: Record<string, unknown>): string {
  let text = "";
  const chunks = Number(entity.chunks);
  for (let c = 0; c < chunks; c++) {
    const chunk = entity[`c${c}`];
    text += typeof chunk === "string" ? chunk : "";
  }
  return text;
}
