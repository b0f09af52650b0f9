import { readFileSync } from "node:fs";
import { join } from "node:path";

import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";

import {
  MAX_ACTIVITY_BYTES,
  MAX_RECIPIENTS,
  notificationRequestJsonSchema,
  parseNotificationRequest,
} from "../../shared/notifications/schema";

const TENANT = "8c8d3f1e-2f4a-4b8e-9d47-3f5a2b1c0d9e";
const AAD = "0f3c2b1a-9d8e-4c7b-a6f5-e4d3c2b1a098";

function request(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 1,
    id: "7f0c-order-42",
    tenantId: TENANT,
    recipients: [{ aadObjectId: AAD }],
    message: { text: "Your order **42** shipped", format: "markdown" },
    ...overrides,
  };
}

const card = { type: "AdaptiveCard", version: "1.5", body: [{ type: "TextBlock", text: "Hi" }] };

function errorsOf(input: unknown): { path: string; message: string }[] {
  const result = parseNotificationRequest(input);
  if (result.ok) throw new Error("expected a rejection");
  return result.errors;
}

const publishedPath = join(
  __dirname,
  "../../shared/notifications/notification-request.schema.json",
);
const published = JSON.parse(readFileSync(publishedPath, "utf8")) as Record<string, unknown>;

describe("notification request schema", () => {
  it("accepts every recipient kind, an Adaptive Card, a summary, notBefore and a correlation id", () => {
    const result = parseNotificationRequest(
      request({
        recipients: [
          { aadObjectId: AAD },
          { userPrincipalName: "ada@contoso.com" },
          { teamsUserId: "29:1abc" },
          { teamId: "19:abc@thread.tacv2" },
        ],
        message: { adaptiveCard: card },
        summary: "Order shipped",
        notBefore: "2030-01-01T08:00:00Z",
        correlationId: "corr-1",
      }),
    );
    expect(result.ok).toBe(true);
  });

  it.each([
    ["a wrong schema version", { schemaVersion: 2 }, "schemaVersion", "must be 1"],
    ["an id with a slash", { id: "a/b" }, "id", "must be 1-128 characters"],
    ["a tenant that is not a GUID", { tenantId: "contoso" }, "tenantId", "must be a GUID"],
    ["no recipients", { recipients: [] }, "recipients", "at least one recipient"],
    [
      "a bad AAD object id",
      { recipients: [{ aadObjectId: "x" }] },
      "recipients.0.aadObjectId",
      "must be a GUID",
    ],
    [
      "a recipient with two identities",
      { recipients: [{ aadObjectId: AAD, teamsUserId: "29:x" }] },
      "recipients.0",
      "exactly one of aadObjectId, userPrincipalName, teamsUserId, teamId, groupId (found aadObjectId, teamsUserId)",
    ],
    ["an empty recipient", { recipients: [{}] }, "recipients.0", "(found none)"],
    [
      "an unknown recipient field",
      { recipients: [{ email: "a@b.c" }] },
      "recipients.0",
      "Unrecognized key",
    ],
    [
      "a Teams id without 29:",
      { recipients: [{ teamsUserId: "abc" }] },
      "recipients.0.teamsUserId",
      "starting with '29:'",
    ],
    [
      "a team id that is not a thread",
      { recipients: [{ teamId: "abc" }] },
      "recipients.0.teamId",
      "19:",
    ],
    [
      "text and card together",
      { message: { text: "a", adaptiveCard: card } },
      "message",
      "exactly one of text, adaptiveCard",
    ],
    ["an empty text", { message: { text: "" } }, "message.text", "must not be empty"],
    ["an unknown format", { message: { text: "a", format: "html" } }, "message.format", "markdown"],
    [
      "a format on a card",
      { message: { adaptiveCard: card, format: "plain" } },
      "message.format",
      "only applies to text",
    ],
    [
      "a card of another type",
      { message: { adaptiveCard: { ...card, type: "HeroCard" } } },
      "message.adaptiveCard.type",
      'must be "AdaptiveCard"',
    ],
    [
      "a card without a version",
      { message: { adaptiveCard: { type: "AdaptiveCard", body: [] } } },
      "message.adaptiveCard.version",
      "expected string",
    ],
    [
      "a card whose body is not an array",
      { message: { adaptiveCard: { ...card, body: {} } } },
      "message.adaptiveCard.body",
      "expected array",
    ],
    [
      "a card element without a type",
      { message: { adaptiveCard: { ...card, body: [{ text: "x" }] } } },
      "message.adaptiveCard.body.0.type",
      "expected string",
    ],
    [
      "a notBefore without a time zone",
      { notBefore: "2030-01-01T08:00:00" },
      "notBefore",
      "with a time zone",
    ],
    ["an unknown top-level field", { priority: "high" }, "(body)", 'Unrecognized key: "priority"'],
  ])("rejects %s, naming the field and the reason", (_name, overrides, path, reason) => {
    const errors = errorsOf(request(overrides));
    expect(errors).toEqual(
      expect.arrayContaining([{ path, message: expect.stringContaining(reason) as unknown }]),
    );
  });

  it("rejects a message over the 80 KB Microsoft advises for a bot message", () => {
    const errors = errorsOf(request({ message: { text: "x".repeat(MAX_ACTIVITY_BYTES) } }));
    expect(errors).toEqual([
      {
        path: "message",
        message: expect.stringMatching(/bytes as a Teams activity; the limit is 80000/) as unknown,
      },
    ]);
  });

  it("accepts a 60 KB message, which the old 27,000-byte webhook cap refused", () => {
    expect(parseNotificationRequest(request({ message: { text: "x".repeat(60_000) } })).ok).toBe(
      true,
    );
  });

  it.each(["1.6", "1.10", "2.0"])(
    "rejects an Adaptive Card of version %s (Teams renders up to 1.5)",
    (version) => {
      const errors = errorsOf(request({ message: { adaptiveCard: { ...card, version } } }));
      expect(errors).toEqual([
        {
          path: "message.adaptiveCard.version",
          message: expect.stringContaining("1.5") as unknown,
        },
      ]);
    },
  );

  it("rejects a lone surrogate in a recipient, naming the field", () => {
    const errors = errorsOf(
      request({ recipients: [{ userPrincipalName: "a\uD800@contoso.com" }] }),
    );
    expect(errors).toEqual([
      {
        path: "recipients.0.userPrincipalName",
        message: expect.stringContaining("well-formed Unicode") as unknown,
      },
    ]);
  });

  it("refuses a right-to-left override in the text, naming the field and the code point", () => {
    // "invoice\u202Egnp.exe" shows as "invoiceexe.png" to the person who gets it.
    const errors = errorsOf(request({ message: { text: "Open invoice\u202Egnp.exe" } }));
    expect(errors).toEqual([
      {
        path: "message.text",
        message: expect.stringContaining("found U+202E RIGHT-TO-LEFT OVERRIDE") as unknown,
      },
    ]);
    expect(errors[0]?.message).toMatch(/at character 13/);
  });

  it.each([
    ["NUL", "\u0000", "U+0000"],
    ["BEL", "\u0007", "U+0007"],
    ["ESC", "\u001b[31m", "U+001B"],
    ["a C1 control", "\u0085", "U+0085"],
    ["a directional isolate", "\u2066", "U+2066"],
  ])("refuses %s in the text and in the summary", (_what, character, point) => {
    const errors = errorsOf(
      request({ message: { text: `a${character}b` }, summary: `c${character}d` }),
    );
    expect(errors.map((e) => e.path)).toEqual(["message.text", "summary"]);
    for (const error of errors) expect(error.message).toContain(`found ${point}`);
  });

  it("accepts tab, CR and LF in the text, and right-to-left text with its marks", () => {
    expect(
      parseNotificationRequest(request({ message: { text: "line 1\r\n\tline 2\n" } })).ok,
    ).toBe(true);
    expect(
      parseNotificationRequest(request({ message: { text: "\u05E9\u05DC\u05D5\u05DD \u200Fabc" } }))
        .ok,
    ).toBe(true);
  });

  it("refuses a control or override character in any string of an Adaptive Card, naming its path", () => {
    const errors = errorsOf(
      request({
        message: {
          adaptiveCard: {
            ...card,
            body: [
              { type: "TextBlock", text: "ok" },
              { type: "TextBlock", text: "x\u202Dy" },
            ],
            actions: [{ type: "Action.OpenUrl", title: "Open\u0007", url: "https://contoso.com" }],
          },
        },
      }),
    );
    expect(errors).toEqual([
      {
        path: "message.adaptiveCard.body.1.text",
        message: expect.stringContaining("found U+202D LEFT-TO-RIGHT OVERRIDE") as unknown,
      },
      {
        path: "message.adaptiveCard.actions.0.title",
        message: expect.stringContaining("found U+0007 BEL") as unknown,
      },
    ]);
  });

  it("rejects a card nested 100,000 levels deep without overflowing the stack", () => {
    let deep: unknown = { type: "TextBlock", text: "bottom" };
    for (let i = 0; i < 100_000; i++) deep = { type: "Container", items: [deep] };
    const errors = errorsOf(request({ message: { adaptiveCard: { ...card, body: [deep] } } }));
    expect(errors).toEqual([
      {
        path: expect.stringMatching(/^message\.adaptiveCard\.body/) as unknown,
        message: expect.stringContaining("levels deep") as unknown,
      },
    ]);
  });

  it("answers a bounded error list with bounded text when the body is hostile", () => {
    const hugeKey = "k".repeat(100_000);
    const recipients = Array.from({ length: 500 }, () => ({ [hugeKey]: 1 }));
    const errors = errorsOf(request({ recipients, [hugeKey]: true }));
    expect(errors.length).toBeLessThanOrEqual(50);
    expect(JSON.stringify(errors).length).toBeLessThan(50 * 700);
  });

  it("rejects more recipients than the limit", () => {
    const recipients = Array.from({ length: MAX_RECIPIENTS + 1 }, (_, i) => ({
      teamsUserId: `29:${i}`,
    }));
    expect(errorsOf(request({ recipients }))).toEqual([
      { path: "recipients", message: `must name at most ${MAX_RECIPIENTS} recipients` },
    ]);
  });

  it("rejects a body that is not an object, and keeps a usable id for the record", () => {
    expect(errorsOf("hello")).toEqual([
      { path: "(body)", message: expect.stringContaining("expected object") as unknown },
    ]);
    const result = parseNotificationRequest({ id: "abc", correlationId: "c-9" });
    expect(result).toMatchObject({ ok: false, id: "abc", correlationId: "c-9" });
  });

  describe("published JSON Schema", () => {
    it("matches the zod schema (run `npm run schema:notifications` after changing it)", () => {
      expect(published).toEqual(notificationRequestJsonSchema());
    });

    it("agrees with the zod schema on valid and invalid requests", () => {
      const ajv = new Ajv2020({ allErrors: true, strict: false });
      addFormats(ajv);
      const validate = ajv.compile(published);
      const samples: [unknown, boolean][] = [
        [request(), true],
        [request({ message: { adaptiveCard: card }, summary: "s" }), true],
        [
          request({
            recipients: [{ userPrincipalName: "a@b.c" }, { teamId: "19:x@thread.skype" }],
          }),
          true,
        ],
        [request({ recipients: [{ aadObjectId: AAD, teamsUserId: "29:x" }] }), false],
        [request({ recipients: [{}] }), false],
        [request({ message: { text: "a", adaptiveCard: card } }), false],
        [request({ message: { adaptiveCard: card, format: "plain" } }), false],
        [request({ message: {} }), false],
        [request({ message: { text: "invoice\u202Egnp.exe" } }), false],
        [request({ summary: "ding\u0007" }), false],
        [request({ message: { text: "tab\tand\r\nlines" }, summary: "s" }), true],
        [request({ tenantId: "nope" }), false],
        [request({ extra: 1 }), false],
      ];
      for (const [sample, valid] of samples) {
        expect({ sample, valid: validate(sample) }).toEqual({ sample, valid });
        expect({ sample, valid: parseNotificationRequest(sample).ok }).toEqual({ sample, valid });
      }
    });
  });
});
