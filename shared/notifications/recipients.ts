import {
  isRecipientKind,
  MAX_RECIPIENT_VALUE_LENGTH,
  type Recipient,
  RECIPIENT_KINDS,
  recipientFromParts,
  recipientKey,
} from "../model/recipient";
import { isWellFormed } from "../validation/json-guard";

export {
  recipientFromParts,
  recipientKey,
  recipientOfKey,
  recipientParts,
} from "../model/recipient";

/** Why a recipient of an otherwise valid request cannot be delivered; recorded as `rejected`. */
export interface RejectedRecipient {
  /** `recipientKey` of the recipient when it has one, else `invalid:<index>`. */
  readonly recipientKey: string;
  /** The recipient as given (for the ledger row); `undefined` when it was not an object. */
  readonly recipient: Recipient | undefined;
  /** Position in the request's `recipients`. */
  readonly index: number;
  readonly reason: string;
}

export interface RecipientSplit {
  /** Unique deliverable recipients by `recipientKey`, in request order (first spelling wins). */
  readonly deliverable: Map<string, Recipient>;
  readonly rejected: RejectedRecipient[];
}

/**
 * Splits a request's recipients into the deliverable ones and the ones that can never be
 * delivered, each with its reason, so that fan-out rejects (and records) a bad recipient and
 * delivers the rest instead of failing the whole request. Pure: no I/O, never throws.
 *
 * A recipient is rejected when it has not exactly one identity, when a value is not a string,
 * is empty, contains a lone UTF-16 surrogate (it cannot be encoded for Teams or storage) or
 * control characters, or is longer than `maxValueLength` (default: the schema's
 * `MAX_RECIPIENT_VALUE_LENGTH`). Requests that passed `parseNotificationRequest` never have
 * such recipients; this guards work built by other paths (a stored request of an older
 * version, a team roster row) and keeps one bad entry from sinking the others.
 */
export function splitRecipients(
  recipients: readonly unknown[],
  options: { maxValueLength?: number } = {},
): RecipientSplit {
  const maxValueLength = options.maxValueLength ?? MAX_RECIPIENT_VALUE_LENGTH;
  const deliverable = new Map<string, Recipient>();
  const rejected: RejectedRecipient[] = [];
  recipients.forEach((candidate, index) => {
    const reject = (reason: string, recipient?: Recipient, key?: string) =>
      rejected.push({
        recipientKey: key ?? `invalid:${index}`,
        recipient,
        index,
        reason,
      });
    if (typeof candidate !== "object" || candidate === null || Array.isArray(candidate)) {
      reject("must be an object with exactly one recipient identity");
      return;
    }
    const entries = Object.entries(candidate as Record<string, unknown>).filter(
      ([, v]) => v !== undefined,
    );
    const kinds = entries.filter(([k]) => isRecipientKind(k));
    if (entries.length !== 1 || kinds.length !== 1) {
      reject(`must have exactly one of ${RECIPIENT_KINDS.join(", ")}`);
      return;
    }
    const [kind, value] = kinds[0]!;
    if (!isRecipientKind(kind)) return; // filtered above
    if (typeof value !== "string" || value.trim() === "") {
      reject(`${kind} must be a non-empty string`);
      return;
    }
    const recipient = recipientFromParts(kind, value);
    const problem = valueProblem(value, maxValueLength);
    if (problem !== undefined) {
      // The key of a bad value is not shown (it may be huge or hostile): its position is.
      reject(`${kind} ${problem}`, recipient);
      return;
    }
    const key = recipientKey(recipient);
    if (!deliverable.has(key)) deliverable.set(key, recipient);
  });
  return { deliverable, rejected };
}

function valueProblem(value: string, maxLength: number): string | undefined {
  if (!isWellFormed(value)) return "must be well-formed Unicode (it contains a lone surrogate)";
  if (value.length > maxLength) return `must be at most ${maxLength} characters`;
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return "must not contain control characters";
  return undefined;
}

/**
 * How many ledger rows a request's dispatch writes, when that is known before it runs: a request
 * naming users only has one row per distinct recipient key (and per rejected recipient that has
 * a key). Undefined when a team roster or an Entra group must be expanded first.
 */
export function plannedRecipientCount(recipients: readonly unknown[]): number | undefined {
  const { deliverable, rejected } = splitRecipients(recipients);
  for (const recipient of deliverable.values())
    if (recipient.teamId !== undefined) return undefined;
  return deliverable.size + rejected.filter((r) => r.recipient !== undefined).length;
}
