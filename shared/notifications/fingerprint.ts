import { createHash } from "node:crypto";

import { recipientKey } from "./recipients";
import type { NotificationRequest } from "./schema";

/** JSON with object keys sorted at every level: one text for one value, however it was spelled. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * What a request means, as one hash: its recipients (as a set of recipient keys, so order,
 * repeats and the case of a UPN do not count), message, the answers to its buttons, summary, notBefore (as an instant) and
 * includeGuests.
 * The same (tenant, id) with the same fingerprint is a replay of one request; with another, a
 * conflict. The correlation id is not content: a retry may carry a new one.
 */
export function requestFingerprint(
  request: Pick<
    NotificationRequest,
    "recipients" | "message" | "actions" | "summary" | "notBefore" | "includeGuests"
  >,
): string {
  const recipients = [...new Set(request.recipients.map(recipientKey))].sort();
  const notBefore =
    request.notBefore === undefined ? null : new Date(request.notBefore).toISOString();
  return createHash("sha256")
    .update(
      canonicalJson({
        recipients,
        message: request.message,
        actions: request.actions,
        summary: request.summary ?? null,
        notBefore,
        // Only when set, so fingerprints of requests that never name it stay as they were.
        ...(request.includeGuests === true ? { includeGuests: true } : {}),
      }),
    )
    .digest("base64url");
}

/**
 * What one person's copy is to show (a per-recipient update: message and summary), as one hash:
 * the same content again is a replay of that update, not another one.
 */
export function copyContentFingerprint(content: {
  readonly message: unknown;
  readonly summary?: string | undefined;
}): string {
  return createHash("sha256")
    .update(canonicalJson({ message: content.message, summary: content.summary ?? null }))
    .digest("base64url");
}
