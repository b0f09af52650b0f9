import type { Logger } from "../logging";
import { isRecipientKind, type Recipient } from "../model/recipient";
import { type WrittenRow, writtenRowSchema } from "../store/delivery-ledger";
import type { DeliveryWork, DispatchWork, InlineRequest } from "./work-items";

/**
 * Cheap guards for the two work items every notification passes through (dispatch and
 * delivery). Only Herald writes them, from a request the intake already parsed with the full
 * schema (shared/notifications/schema.ts), so running that schema again (a zod walk of the whole
 * message, its card's button checks) would validate the same content twice. A guard checks the
 * shape the handler relies on, so a malformed item (a bug, or an item of another version) is
 * logged and dropped instead of failing deep inside; the content itself is not judged again.
 * The zod schemas in work-items.ts stay the description of these items (their types, the
 * dead-letter recorder's reading of them).
 */
export type Guarded<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: string };

type Fields = Readonly<Record<string, unknown>>;

function isObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isText(value: unknown, max: number): value is string {
  return typeof value === "string" && value.length >= 1 && value.length <= max;
}

function isOptionalText(value: unknown, max: number): boolean {
  return value === undefined || (typeof value === "string" && value.length <= max);
}

function isCount(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && value >= 1;
}

function isOptionalCount(value: unknown): boolean {
  return value === undefined || isCount(value);
}

/** The first problem found, as `field: reason` (never the value: it may be personal data). */
type Check = readonly [field: string, ok: boolean, reason: string];

function firstProblem(checks: readonly Check[]): string | undefined {
  for (const [field, ok, reason] of checks) if (!ok) return `${field}: ${reason}`;
  return undefined;
}

const TENANT_MAX = 256;
const REQUEST_ID_MAX = 128;
const CORRELATION_MAX = 128;

function isTenant(value: unknown): boolean {
  return isText(value, TENANT_MAX) && value.trim() !== "";
}

function inlineRequestProblem(request: unknown): string | undefined {
  if (request === undefined) return undefined;
  if (!isObject(request)) return "request: must be an object";
  const message = request.message;
  return firstProblem([
    [
      "request.message",
      isObject(message) && (typeof message.text === "string" || isObject(message.adaptiveCard)),
      "must hold text or an adaptiveCard",
    ],
    ["request.summary", isOptionalText(request.summary, Number.MAX_SAFE_INTEGER), "must be text"],
    ["request.notBefore", isOptionalText(request.notBefore, 64), "must be a date-time"],
    [
      "request.recipients",
      Array.isArray(request.recipients) && request.recipients.length >= 1,
      "must be a non-empty array",
    ],
    [
      "request.includeGuests",
      request.includeGuests === undefined || typeof request.includeGuests === "boolean",
      "must be a boolean",
    ],
    ["request.revision", isOptionalCount(request.revision), "must be a whole number from 1"],
  ]);
}

/** A `dispatch` item: what the intake (or a dispatch put back) wrote. */
export function guardDispatchWork(body: unknown): Guarded<DispatchWork> {
  if (!isObject(body)) return { ok: false, errors: "(body): must be an object" };
  const problem =
    firstProblem([
      ["tenantId", isTenant(body.tenantId), "must be a non-empty string"],
      ["requestId", isText(body.requestId, REQUEST_ID_MAX), "must be 1-128 characters"],
      ["correlationId", isOptionalText(body.correlationId, CORRELATION_MAX), "must be text"],
      ["attempt", isOptionalCount(body.attempt), "must be a whole number from 1"],
    ]) ?? inlineRequestProblem(body.request);
  if (problem !== undefined) return { ok: false, errors: problem };
  const work: DispatchWork = {
    tenantId: (body.tenantId as string).trim(),
    requestId: body.requestId as string,
    ...(body.correlationId !== undefined ? { correlationId: body.correlationId as string } : {}),
    ...(body.request !== undefined ? { request: body.request as InlineRequest } : {}),
    ...(body.attempt !== undefined ? { attempt: body.attempt as number } : {}),
  };
  return { ok: true, value: work };
}

/** Exactly one recipient identity with a non-empty text value (what recipientKey needs). */
function isRecipient(value: unknown): value is Recipient {
  if (!isObject(value)) return false;
  let kinds = 0;
  for (const key in value) {
    if (value[key] === undefined) continue;
    if (!isRecipientKind(key) || !isText(value[key], Number.MAX_SAFE_INTEGER)) return false;
    kinds += 1;
  }
  return kinds === 1;
}

/** A ledger row's ETag and creation time, as the fan-out put them in the item (a tiny object). */
function isWrittenRow(value: unknown): value is WrittenRow {
  return writtenRowSchema.safeParse(value).success;
}

/** A `delivery` item: a fanned-out share of a request, or a scheduled retry. */
export function guardDeliveryWork(body: unknown): Guarded<DeliveryWork> {
  if (!isObject(body)) return { ok: false, errors: "(body): must be an object" };
  const problem = firstProblem([
    ["requestId", isText(body.requestId, REQUEST_ID_MAX), "must be 1-128 characters"],
    ["tenantId", isTenant(body.tenantId), "must be a non-empty string"],
    ["recipient", isRecipient(body.recipient), "must have exactly one recipient identity"],
    ["attempt", isCount(body.attempt), "must be a whole number from 1"],
    ["correlationId", isOptionalText(body.correlationId, CORRELATION_MAX), "must be text"],
    [
      "installSlotAt",
      body.installSlotAt === undefined ||
        (typeof body.installSlotAt === "string" && !Number.isNaN(Date.parse(body.installSlotAt))),
      "must be a date-time",
    ],
    ["sole", body.sole === undefined || typeof body.sole === "boolean", "must be a boolean"],
    [
      "distinctPeople",
      body.distinctPeople === undefined || typeof body.distinctPeople === "boolean",
      "must be a boolean",
    ],
    [
      "written",
      body.written === undefined || isWrittenRow(body.written),
      "must be an ETag and a time",
    ],
  ]);
  if (problem !== undefined) return { ok: false, errors: problem };
  const work: DeliveryWork = {
    requestId: body.requestId as string,
    tenantId: (body.tenantId as string).trim(),
    recipient: body.recipient as Recipient,
    attempt: body.attempt as number,
    ...(body.correlationId !== undefined ? { correlationId: body.correlationId as string } : {}),
    ...(body.installSlotAt !== undefined ? { installSlotAt: body.installSlotAt as string } : {}),
    ...(body.sole !== undefined ? { sole: body.sole as boolean } : {}),
    ...(body.distinctPeople !== undefined
      ? { distinctPeople: body.distinctPeople as boolean }
      : {}),
    ...(body.written !== undefined ? { written: body.written as WrittenRow } : {}),
  };
  return { ok: true, value: work };
}

/** A guarded work item, or undefined after logging why it was dropped (as `parseWork` does). */
export function guardedWork<T>(
  guard: (body: unknown) => Guarded<T>,
  kind: string,
  body: unknown,
  log: Logger,
): T | undefined {
  const guarded = guard(body);
  if (guarded.ok) return guarded.value;
  log.error(`Malformed ${kind} work item dropped`, { errors: guarded.errors });
  return undefined;
}
