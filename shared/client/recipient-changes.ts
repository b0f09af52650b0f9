import { type Recipient, recipientNamed } from "../model/recipient";
import { isGuid, isRequestId } from "../notifications/schema";
import { type UpdateInput, validateChange } from "./changes";
import { type RequestIssue, RequestValidationError } from "./client-errors";

/**
 * One person's copy of a sent request replaced with content of its own
 * (`PATCH /api/notifications/{id}/recipients/{recipient}`): what the caller passes, and what
 * Herald answers.
 */

/** The request-wide update's content (`message` and/or `summary`), without a new time. */
export type RecipientUpdateInput = Pick<UpdateInput, "message" | "summary" | "correlationId">;

/** Herald took it: the request's revision it applies to, and the override's sequence. */
export interface RecipientChangeAnswer {
  readonly kind: "accepted";
  /** The person as the request named them. */
  readonly recipient: Recipient;
  readonly revision: number;
  /** 1 for the copy's first per-recipient update, one more for each later one. */
  readonly override: number;
}

/** A per-recipient update validated, ready for the endpoint. */
export interface RecipientChange {
  readonly id: string;
  readonly tenantId: string;
  /** As the path names them: AAD object id, UPN or Teams user id. */
  readonly recipient: string;
  readonly content: RecipientUpdateInput;
}

/**
 * Checked with the processor's own schema (the update's), before anything is sent.
 * @throws RequestValidationError naming every bad field.
 */
export function validateRecipientChange(change: RecipientChange): RecipientChange {
  const { message, summary, correlationId } = change.content;
  const content = {
    ...(message !== undefined ? { message } : {}),
    ...(summary !== undefined ? { summary } : {}),
    ...(correlationId !== undefined ? { correlationId } : {}),
  };
  const issues: RequestIssue[] = [];
  if (recipientNamed(change.recipient) === undefined)
    issues.push({
      path: "recipient",
      message: "must be an AAD object id, a UPN or a Teams user id (29:…)",
    });
  if ((change.content as { notBefore?: unknown }).notBefore !== undefined)
    issues.push({ path: "notBefore", message: "applies to the whole request only (update)" });
  if (message === undefined && summary === undefined) {
    // Nothing for the update's schema to check beyond the request's identity.
    if (!isRequestId(change.id)) issues.push({ path: "id", message: "is not a valid request id" });
    if (!isGuid(change.tenantId)) issues.push({ path: "tenantId", message: "must be a GUID" });
    issues.push({ path: "(body)", message: "must change at least one of message, summary" });
  } else {
    try {
      validateChange("update", { id: change.id, tenantId: change.tenantId, ...content });
    } catch (error) {
      if (!(error instanceof RequestValidationError)) throw error;
      issues.push(...error.issues);
    }
  }
  if (issues.length > 0) throw new RequestValidationError(issues, "Invalid recipient update");
  return { ...change, content };
}
