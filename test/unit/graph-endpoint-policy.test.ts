import { checkGraphEndpoint, isOnGraphEndpoint } from "../../shared/graph/graph-endpoint-policy";
import { classifyGraphAnswer, MAX_GRAPH_RETRY_AFTER_MS } from "../../shared/graph/graph-error";

describe("checkGraphEndpoint", () => {
  it.each([
    ["https://graph.microsoft.com", true, "https://graph.microsoft.com"],
    ["https://graph.microsoft.us/", true, "https://graph.microsoft.us"],
    ["http://127.0.0.1:8080", false, "http://127.0.0.1:8080"],
    ["https://localhost:8443", false, "https://localhost:8443"],
  ])("accepts %s (authenticated: %s)", (endpoint, authenticated, origin) => {
    expect(checkGraphEndpoint(endpoint, { authenticated })).toEqual({ ok: true, origin });
  });

  it.each([
    ["http://graph.microsoft.com", true, /must be https/],
    ["https://graph.microsoft.com", false, /loopback/],
    ["https://user:pw@graph.microsoft.com", true, /credentials/],
    ["https://graph.microsoft.com/beta", true, /origin only/],
    ["ftp://127.0.0.1", false, /not https/],
    ["not a url", true, /not a URL/],
  ])("refuses %s (authenticated: %s)", (endpoint, authenticated, reason) => {
    const verdict = checkGraphEndpoint(endpoint, { authenticated });
    expect(verdict.ok).toBe(false);
    expect(verdict.ok ? "" : verdict.reason).toMatch(reason);
  });
});

describe("isOnGraphEndpoint", () => {
  const origin = "https://graph.microsoft.com";

  it("follows a link on the same scheme, host and port", () => {
    expect(
      isOnGraphEndpoint(`${origin}/v1.0/groups/g/transitiveMembers?$skiptoken=x`, origin),
    ).toBe(true);
  });

  it.each([
    "https://graph.microsoft.com.evil.example/v1.0/x",
    "http://graph.microsoft.com/v1.0/x",
    "https://graph.microsoft.com:8443/v1.0/x",
    "https://me@graph.microsoft.com/v1.0/x",
    "//graph.microsoft.com/v1.0/x",
  ])("refuses %s", (link) => {
    expect(isOnGraphEndpoint(link, origin)).toBe(false);
  });
});

describe("classifyGraphAnswer", () => {
  const headers = (retryAfter?: string) => ({
    get: (name: string) => (name === "retry-after" ? (retryAfter ?? null) : null),
  });

  it("keeps Graph's code and request id but never its message, which may quote a UPN", () => {
    const error = classifyGraphAnswer("getUser", {
      status: 400,
      headers: headers(),
      body: {
        error: {
          code: "Request_BadRequest",
          message: "Invalid object identifier 'alice@contoso.example'.",
          innerError: { "request-id": "r-1" },
        },
      },
    });
    expect([error.kind, error.code, error.requestId]).toEqual([
      "bad-request",
      "Request_BadRequest",
      "r-1",
    ]);
    expect(error.message).not.toContain("alice");
  });

  it("clamps a Retry-After beyond the longest wait Herald honours", () => {
    const error = classifyGraphAnswer("installAppForUser", {
      status: 429,
      headers: headers("100000"),
      body: undefined,
    });
    expect(error.retryAfterMs).toBe(MAX_GRAPH_RETRY_AFTER_MS);
  });

  it("leaves retryAfterMs undefined when Graph sends no Retry-After", () => {
    expect(
      classifyGraphAnswer("getUser", { status: 503, headers: headers(), body: undefined })
        .retryAfterMs,
    ).toBeUndefined();
  });

  it.each([
    ["getUser", "User.Read.All"],
    ["findAppByExternalId", "AppCatalog.Read.All"],
    ["installAppForUser", "TeamsAppInstallation.ReadWriteSelfForUser.All"],
    ["findInstallation", "TeamsAppInstallation.ReadWriteSelfForUser.All"],
    ["getInstalledAppChat", "TeamsAppInstallation.ReadWriteSelfForUser.All"],
    ["listGroupUserMembers", "GroupMember.Read.All"],
  ] as const)("names the permission %s needs on 403: %s", (operation, permission) => {
    const error = classifyGraphAnswer(operation, { status: 403, headers: headers(), body: {} });
    expect([error.kind, error.permission]).toEqual(["forbidden", permission]);
    expect(error.message).toContain(permission);
  });

  it("suggests TeamsAppCatalogId when the catalog lookup is forbidden", () => {
    const error = classifyGraphAnswer("findAppByExternalId", {
      status: 403,
      headers: headers(),
      body: {},
    });
    expect(error.message).toContain("TeamsAppCatalogId");
  });

  it("treats 401 as unauthorized and 408 as transient", () => {
    expect(classifyGraphAnswer("getUser", { status: 401, headers: headers(), body: {} }).kind).toBe(
      "unauthorized",
    );
    expect(classifyGraphAnswer("getUser", { status: 408, headers: headers(), body: {} }).kind).toBe(
      "transient",
    );
  });
});
