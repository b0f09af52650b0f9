import { HeraldError, ValidationError } from "../errors";

/** One problem with one request: the field, and where the request came from. */
export interface RequestIssue {
  /** Dotted path into the request (`recipients.0.aadObjectId`), `(body)` for the whole. */
  readonly path: string;
  readonly message: string;
  /** Position in the array given to `sendMany` (from 0). */
  readonly index?: number;
  /** Line of a JSONL bulk file (from 1). */
  readonly line?: number;
}

/** `line 3: recipients.0.aadObjectId: must be a GUID` (or `requests[2]: …`, or just the field). */
export function formatIssue(issue: RequestIssue): string {
  const where =
    issue.line !== undefined
      ? `line ${issue.line}: `
      : issue.index !== undefined
        ? `requests[${issue.index}]: `
        : "";
  return `${where}${issue.path}: ${issue.message}`;
}

const LISTED_ISSUES = 20;

/**
 * A request failed the notification request schema (the one the processor applies) before
 * anything was sent. `issues` names every bad field; nothing of the call was sent.
 */
export class RequestValidationError extends ValidationError {
  override readonly issues: readonly RequestIssue[];

  constructor(issues: readonly RequestIssue[], subject = "Invalid notification request") {
    const listed = issues.slice(0, LISTED_ISSUES).map(formatIssue);
    const more =
      issues.length > LISTED_ISSUES ? [`… and ${issues.length - LISTED_ISSUES} more`] : [];
    super(`${subject}: ${[...listed, ...more].join("; ")}`, issues);
    this.issues = issues;
  }
}

/** The HTTP endpoint answered with an error status. */
export class HttpResponseError extends HeraldError {
  constructor(
    message: string,
    readonly statusCode: number,
    /** The parsed JSON body, when there was one (never contains secrets: the server's answer). */
    readonly body?: unknown,
  ) {
    super(message);
  }
}

/**
 * Sending failed part-way. `sentIds` were accepted by the queue or endpoint; `unsentIds` may
 * or may not have been. Sending the unsent ones again is safe: the ids make it idempotent
 * (Service Bus duplicate detection, the endpoint's answer to a replay, the processor's request
 * record). `conflictIds` were refused by the endpoint (409) and are in neither list: nothing of
 * them was queued, and sending them again under the same id is refused again.
 */
export class NotificationSendError extends HeraldError {
  constructor(
    message: string,
    readonly sentIds: readonly string[],
    readonly unsentIds: readonly string[],
    options?: ErrorOptions & { readonly conflictIds?: readonly string[] },
  ) {
    super(message, options);
    this.conflictIds = options?.conflictIds ?? [];
  }

  readonly conflictIds: readonly string[];
}

/**
 * The endpoint answered 409: the id is already used in this tenant by a request with different
 * content. Nothing of the refused request was queued; send it again under a new id. The same id
 * with the same content is a replay and is accepted (202), so a retry never lands here.
 *
 * From `sendMany`, every other request was still sent: `conflictIds` lists the refused ids,
 * `sentIds` the accepted ones. (When sending also failed otherwise, `sendMany` throws
 * `NotificationSendError` instead, with the conflicts in its `conflictIds`.)
 */
export class RequestConflictError extends HeraldError {
  readonly conflictIds: readonly string[];
  readonly sentIds: readonly string[];

  constructor(refused: {
    readonly conflictIds: readonly string[];
    readonly sentIds?: readonly string[];
  }) {
    const sentIds = refused.sentIds ?? [];
    super(conflictMessage(refused.conflictIds, sentIds));
    this.conflictIds = refused.conflictIds;
    this.sentIds = sentIds;
  }
}

const LISTED_IDS = 10;

function listIds(ids: readonly string[]): string {
  const listed = ids.slice(0, LISTED_IDS).join(", ");
  return ids.length > LISTED_IDS ? `${listed} … and ${ids.length - LISTED_IDS} more` : listed;
}

function conflictMessage(conflictIds: readonly string[], sentIds: readonly string[]): string {
  const refused =
    conflictIds.length === 1
      ? `Request id ${conflictIds[0]!} is already used in this tenant by a request with different content: nothing of it was queued. Send it again with a new id.`
      : `${conflictIds.length} request ids are already used in their tenant by requests with different content (${listIds(conflictIds)}): nothing of them was queued. Send them again with new ids.`;
  if (sentIds.length === 0) return refused;
  return `${refused} The other ${sentIds.length === 1 ? "request was" : `${sentIds.length} requests were`} accepted.`;
}

/** An update or recall named a request Herald does not have (HTTP 404). */
export class NotificationNotFoundError extends HeraldError {
  constructor(readonly id: string) {
    super(`No notification request ${id} in this tenant: nothing was changed`);
  }
}

/** A per-recipient update named a person the request does not reach (HTTP 404). */
export class RecipientNotFoundError extends HeraldError {
  constructor(
    readonly id: string,
    readonly recipient: string,
  ) {
    super(`Request ${id} has no copy for ${recipient}: nothing was changed`);
  }
}

/**
 * Herald refused an update or recall of a request as it is (HTTP 409): it was recalled, it was
 * rejected, or a new `notBefore` came after it was sent. The message says which.
 */
export class ChangeRefusedError extends HeraldError {
  constructor(
    readonly id: string,
    reason: string,
  ) {
    super(`Request ${id}: ${reason}`);
  }
}
