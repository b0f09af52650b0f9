import { randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";

import type { NotificationRequest } from "../notifications/schema";
import type { RequestIssue } from "./client-errors";
import { prepareRequest } from "./prepare-request";

/** A valid request and the line it came from. */
export interface BulkRequest {
  readonly line: number;
  readonly request: NotificationRequest;
}

/** An invalid line: every problem found, each naming its field. */
export interface InvalidLine {
  readonly line: number;
  readonly issues: readonly RequestIssue[];
}

export interface BulkFile {
  readonly valid: readonly BulkRequest[];
  readonly invalid: readonly InvalidLine[];
}

export interface BulkFileOptions {
  /** Makes ids for lines that have none (default `randomUUID`). */
  readonly generateId?: () => string;
  /** Filled into lines that leave them out (the CLI's `--tenant`). */
  readonly defaults?: { readonly tenantId?: string };
}

/**
 * Reads a JSON Lines file of notification requests (one request per line; blank lines are
 * skipped; `id` and `schemaVersion` may be left out). Every line is checked with the
 * processor's schema, and an id used twice is an error on the later line (the broker would
 * drop it silently as a duplicate). Nothing is sent here: the caller decides what to do with
 * the invalid lines.
 */
export async function readBulkFile(path: string, options: BulkFileOptions = {}): Promise<BulkFile> {
  const lines = createInterface({
    input: createReadStream(path, { encoding: "utf8" }),
    crlfDelay: Infinity,
  });
  return parseBulkLines(lines, options);
}

export async function parseBulkLines(
  lines: Iterable<string> | AsyncIterable<string>,
  options: BulkFileOptions = {},
): Promise<BulkFile> {
  const valid: BulkRequest[] = [];
  const invalid: InvalidLine[] = [];
  const lineOfId = new Map<string, number>();
  const newId = options.generateId ?? randomUUID;
  let line = 0;
  for await (const raw of lines) {
    line += 1;
    const text = (line === 1 ? raw.replace(/^\uFEFF/, "") : raw).trim();
    if (text === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      invalid.push({
        line,
        issues: [{ line, path: "(line)", message: `not valid JSON (${(error as Error).message})` }],
      });
      continue;
    }
    const prepared = prepareRequest(withDefaults(value, options.defaults), newId, { line });
    if (!prepared.ok) {
      invalid.push({ line, issues: prepared.issues });
      continue;
    }
    const first = lineOfId.get(prepared.request.id);
    if (first !== undefined) {
      invalid.push({
        line,
        issues: [
          {
            line,
            path: "id",
            message: `"${prepared.request.id}" is already used on line ${first}`,
          },
        ],
      });
      continue;
    }
    lineOfId.set(prepared.request.id, line);
    valid.push({ line, request: prepared.request });
  }
  return { valid, invalid };
}

function withDefaults(value: unknown, defaults: BulkFileOptions["defaults"]): unknown {
  if (defaults?.tenantId === undefined) return value;
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const record = value as Record<string, unknown>;
  return record.tenantId === undefined ? { ...record, tenantId: defaults.tenantId } : record;
}
