import { RestError } from "@azure/core-rest-pipeline";

import {
  classifyConnectorError,
  describeFailure,
  parseRetryAfter,
} from "../../shared/connector/teams-connector";

/** A RestError shaped as botbuilder's connector client throws it for a Teams error answer. */
function teamsError(
  status: number,
  code: string,
  headers: Record<string, string> = {},
  subCode?: string,
): RestError {
  const body = JSON.stringify({
    error: { code, message: `${code} happened`, ...(subCode ? { subCode } : {}) },
  });
  return new RestError(`${code} happened`, {
    statusCode: status,
    response: {
      status,
      headers: { get: (name: string) => headers[name.toLowerCase()] } as never,
      bodyAsText: body,
      request: {} as never,
    },
  });
}

describe("classifyConnectorError", () => {
  it.each([
    [400, "BadArgument", "rejected"],
    [401, "BotNotRegistered", "failed"],
    [403, "BotDisabledByAdmin", "recipientGone"],
    [403, "ConversationBlockedByUser", "recipientGone"],
    [403, "ForbiddenOperationException", "recipientGone"],
    [404, "ConversationNotFound", "conversationGone"],
    [412, "PreconditionFailed", "transient"],
    [413, "MessageSizeTooBig", "rejected"],
    [429, "Throttled", "throttled"],
    [500, "ServiceError", "failed"],
    [502, "BadGateway", "transient"],
    [503, "ServiceUnavailable", "transient"],
    [504, "GatewayTimeout", "transient"],
  ] as const)("maps HTTP %i %s to %s, per TEAMS-FACTS.md", (status, code, kind) => {
    expect(classifyConnectorError(teamsError(status, code))).toMatchObject({ kind, status, code });
  });

  it("keeps Teams' subCode (403 MessageWritesBlocked)", () => {
    expect(
      classifyConnectorError(teamsError(403, "Forbidden", {}, "MessageWritesBlocked")),
    ).toMatchObject({
      kind: "recipientGone",
      subCode: "MessageWritesBlocked",
    });
  });

  it("reads Retry-After in seconds or as an HTTP date", () => {
    expect(
      classifyConnectorError(teamsError(429, "Throttled", { "retry-after": "2" })),
    ).toMatchObject({
      kind: "throttled",
      retryAfterMs: 2_000,
    });
    const now = Date.parse("2030-01-01T00:00:00Z");
    expect(parseRetryAfter("Tue, 01 Jan 2030 00:00:05 GMT", now)).toBe(5_000);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
  });

  it("treats timeouts and dropped connections as transient", () => {
    const reset = new RestError("socket hang up", { code: "ECONNRESET" });
    expect(classifyConnectorError(reset)).toMatchObject({
      kind: "transient",
      status: undefined,
      code: "ECONNRESET",
    });
    const aborted = Object.assign(new Error("The operation was aborted"), { name: "AbortError" });
    expect(classifyConnectorError(aborted)).toMatchObject({ kind: "transient", code: "TIMEOUT" });
  });

  it("leaves errors that are not Teams answers to the caller (a bug is not a delivery outcome)", () => {
    expect(classifyConnectorError(new TypeError("x is undefined"))).toBeUndefined();
  });

  it("describes a failure in one line without the payload", () => {
    const failure = classifyConnectorError(teamsError(403, "ConversationBlockedByUser"))!;
    expect(describeFailure(failure)).toBe(
      "HTTP 403 ConversationBlockedByUser: ConversationBlockedByUser happened",
    );
  });
});
