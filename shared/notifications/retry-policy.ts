import { type ConnectorFailure, describeFailure } from "../connector/teams-connector";
import type { GraphError } from "../graph/graph-error";
import { type BackoffOptions, retryDelayMs } from "./backoff";

/**
 * The one place that says what a failed Teams or Graph call means for the work that made it:
 * retried later (and when), or final with which state. Pure: the callers (delivery, proactive
 * install, and whatever else calls Teams or Graph for a recipient) act on the decision.
 *
 * Teams' status codes as Microsoft documents them ("Status codes from bot conversational APIs",
 * https://learn.microsoft.com/microsoftteams/platform/bots/build-conversational-capability#status-codes-from-bot-conversational-apis),
 * classified by the connector (`classifyConnectorError`):
 * - 429 (honour Retry-After), 412, 502, 503, 504, timeouts, an unreadable answer: retried, with
 *   exponential back-off and jitter (backoff.ts), until `maxAttempts`; then `failed`;
 * - 403: `unreachable`, and the user marked (blocked, uninstalled, disabled by the admin);
 * - 400, 413: `rejected` (the payload is wrong);
 * - 404 that reaches here (the send already created the chat again once), 500, 401, anything
 *   else: `failed` (Teams documents 500 as not retryable).
 * Microsoft Graph (graph-error.ts): 429, 5xx, no answer, an unreadable answer are retried the
 * same way; 403 and 404 are `unreachable` (a permission to grant, a user Graph does not know);
 * anything else is `failed`.
 */

/** A failed call, as its client reported it; `context` (what the call was for) leads the reason. */
export type CallFailure = (
  | { readonly source: "teams"; readonly failure: ConnectorFailure }
  | { readonly source: "graph"; readonly error: GraphError }
) & { readonly context?: string };

export interface RetryPolicy {
  /** Attempts one piece of work gets (`MaxDeliveryAttempts`); attempt numbers start at 1. */
  readonly maxAttempts: number;
  /** The jitter's draw in [0, 1) (`Math.random`; a fixed value in tests). */
  readonly random: () => number;
  readonly backoff?: BackoffOptions;
}

export type Decision =
  /**
   * Try again: attempt `attempt` after `delayMs`. `throttled`: the call was answered 429, so
   * the caller tells the pacer of the limit it ran under.
   */
  | {
      readonly kind: "retry";
      readonly attempt: number;
      readonly delayMs: number;
      readonly reason: string;
      readonly throttled: boolean;
      readonly retryAfterMs: number | undefined;
    }
  /** The person cannot be reached. `userBlocked`: Teams said so; mark their reference. */
  | {
      readonly kind: "unreachable";
      readonly reason: string;
      readonly userBlocked?: { readonly code: string; readonly forgetConversation: boolean };
    }
  /** What Herald sent is wrong; no retry helps. */
  | { readonly kind: "rejected"; readonly reason: string }
  /** Final. `alert`: an operator must act (logged as an error). */
  | { readonly kind: "failed"; readonly reason: string; readonly alert?: string };

/** What a failure is before the attempt budget: one that may pass, or a final decision. */
type Verdict =
  | {
      readonly kind: "passing";
      readonly reason: string;
      readonly throttled: boolean;
      readonly retryAfterMs: number | undefined;
    }
  | Exclude<Decision, { kind: "retry" }>;

/** What to do after `attempt` (1 = the first try) ended in `failure`. */
export function decide(failure: CallFailure, attempt: number, policy: RetryPolicy): Decision {
  const verdict = withContext(
    failure.source === "teams" ? teamsVerdict(failure.failure) : graphVerdict(failure.error),
    failure.context,
  );
  if (verdict.kind !== "passing") return verdict;
  if (attempt >= policy.maxAttempts)
    return { kind: "failed", reason: `${verdict.reason} (gave up after ${attempt} attempts)` };
  return {
    kind: "retry",
    attempt: attempt + 1,
    delayMs: retryDelayMs(attempt, verdict.retryAfterMs, policy.random, policy.backoff),
    reason: verdict.reason,
    throttled: verdict.throttled,
    retryAfterMs: verdict.retryAfterMs,
  };
}

function withContext(verdict: Verdict, context: string | undefined): Verdict {
  return context === undefined ? verdict : { ...verdict, reason: `${context}: ${verdict.reason}` };
}

function teamsVerdict(failure: ConnectorFailure): Verdict {
  const reason = describeFailure(failure);
  switch (failure.kind) {
    case "throttled":
    case "transient":
      return {
        kind: "passing",
        reason,
        throttled: failure.kind === "throttled",
        retryAfterMs: failure.retryAfterMs,
      };
    case "recipientGone": {
      const code = failure.code ?? "403";
      return {
        kind: "unreachable",
        reason,
        // A blocked conversation's id is useless; a fresh one is created when the user returns.
        userBlocked: { code, forgetConversation: code === "ConversationBlockedByUser" },
      };
    }
    case "rejected":
      return { kind: "rejected", reason };
    case "conversationGone":
    case "failed":
      return failure.status === 401
        ? {
            kind: "failed",
            reason,
            alert:
              "Teams refused the bot's credentials (401): check MicrosoftAppId and its identity",
          }
        : { kind: "failed", reason };
  }
}

function graphVerdict(error: GraphError): Verdict {
  const reason = error.message;
  if (error.retryable)
    return {
      kind: "passing",
      reason,
      throttled: error.kind === "throttled",
      retryAfterMs: error.retryAfterMs,
    };
  if (error.kind === "forbidden") return { kind: "unreachable", reason };
  if (error.kind === "not-found") {
    const what = error.operation === "listGroupUserMembers" ? "group" : "user";
    return {
      kind: "unreachable",
      reason: `${reason}: Microsoft Graph knows no such ${what} in the tenant`,
    };
  }
  return { kind: "failed", reason };
}
