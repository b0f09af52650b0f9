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
 * (Service Bus duplicate detection, the endpoint's 409, the processor's request record).
 */
export class NotificationSendError extends HeraldError {
  constructor(
    message: string,
    readonly sentIds: readonly string[],
    readonly unsentIds: readonly string[],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
