import type { ConnectorFailure } from "../../shared/connector/teams-connector";
import { GraphError } from "../../shared/graph/graph-error";
import { decide, type RetryPolicy } from "../../shared/notifications/retry-policy";

const policy: RetryPolicy = { maxAttempts: 4, random: () => 0 };

function teams(failure: ConnectorFailure) {
  return { source: "teams", failure } as const;
}

function graph(kind: ConstructorParameters<typeof GraphError>[0]["kind"], retryAfterMs?: number) {
  return {
    source: "graph",
    error: new GraphError({
      kind,
      operation: "installAppForUser",
      status: undefined,
      retryAfterMs,
      reason: kind,
    }),
  } as const;
}

const detail = { code: undefined, message: "m" };

describe("decide (the retry policy)", () => {
  it("retries a 429 as the next attempt no earlier than its Retry-After, saying it was throttled", () => {
    const decision = decide(
      teams({ kind: "throttled", status: 429, ...detail, retryAfterMs: 7_000 }),
      1,
      policy,
    );
    expect(decision).toMatchObject({ kind: "retry", attempt: 2, throttled: true });
    expect(decision.kind === "retry" && decision.delayMs).toBeGreaterThanOrEqual(7_000);
  });

  it("backs a 503 off exponentially with the attempt that failed", () => {
    const delays = [1, 2, 3].map((attempt) => {
      const d = decide(
        teams({ kind: "transient", status: 503, ...detail, retryAfterMs: undefined }),
        attempt,
        policy,
      );
      return d.kind === "retry" ? d.delayMs : NaN;
    });
    expect(delays).toEqual([2_000, 4_000, 8_000]);
  });

  it("ends a failure that may pass failed on the last attempt, saying after how many", () => {
    expect(
      decide(
        teams({ kind: "transient", status: 502, ...detail, retryAfterMs: undefined }),
        4,
        policy,
      ),
    ).toEqual({ kind: "failed", reason: "HTTP 502: m (gave up after 4 attempts)" });
  });

  it("ends a 403 unreachable and has the user marked, forgetting a conversation the user blocked", () => {
    expect(
      decide(
        teams({
          kind: "recipientGone",
          status: 403,
          code: "ConversationBlockedByUser",
          message: "m",
        }),
        1,
        policy,
      ),
    ).toMatchObject({
      kind: "unreachable",
      userBlocked: { code: "ConversationBlockedByUser", forgetConversation: true },
    });
    expect(
      decide(
        teams({ kind: "recipientGone", status: 403, code: "BotDisabledByAdmin", message: "m" }),
        1,
        policy,
      ),
    ).toMatchObject({ userBlocked: { forgetConversation: false } });
  });

  it("rejects a 400, fails a 500 and a 404 without a retry, and alerts the operator on a 401", () => {
    expect(decide(teams({ kind: "rejected", status: 400, ...detail }), 1, policy).kind).toBe(
      "rejected",
    );
    expect(decide(teams({ kind: "failed", status: 500, ...detail }), 1, policy)).toEqual({
      kind: "failed",
      reason: "HTTP 500: m",
    });
    expect(
      decide(teams({ kind: "conversationGone", status: 404, ...detail }), 1, policy).kind,
    ).toBe("failed");
    expect(decide(teams({ kind: "failed", status: 401, ...detail }), 1, policy)).toMatchObject({
      kind: "failed",
      alert: expect.stringContaining("401") as unknown,
    });
  });

  it("retries Graph's 429, 5xx and unreadable answers as Teams' are, and ends 403 and 404 unreachable", () => {
    expect(decide(graph("throttled", 3_000), 1, policy)).toMatchObject({
      kind: "retry",
      throttled: true,
      retryAfterMs: 3_000,
    });
    expect(decide(graph("transient"), 1, policy).kind).toBe("retry");
    expect(decide(graph("unreadable"), 1, policy)).toMatchObject({
      kind: "retry",
      throttled: false,
    });
    expect(decide(graph("unreadable"), 4, policy)).toMatchObject({
      kind: "failed",
      reason: expect.stringContaining("gave up after 4 attempts") as unknown,
    });
    expect(decide(graph("forbidden"), 1, policy).kind).toBe("unreachable");
    expect(decide(graph("not-found"), 1, policy)).toMatchObject({
      kind: "unreachable",
      reason: expect.stringContaining("knows no such user") as unknown,
    });
    expect(decide(graph("bad-request"), 1, policy).kind).toBe("failed");
  });

  it("puts what the call was for in front of the reason", () => {
    expect(
      decide(
        {
          ...teams({ kind: "transient", status: 503, ...detail, retryAfterMs: undefined }),
          context: "member lookup",
        },
        1,
        policy,
      ),
    ).toMatchObject({ reason: "member lookup: HTTP 503: m" });
  });
});
