import fc from "fast-check";

import { namesDistinctPeople } from "../../shared/model/recipient";
import { recipientKey, splitRecipients } from "../../shared/notifications/recipients";
import { MAX_RECIPIENT_VALUE_LENGTH } from "../../shared/notifications/schema";

const AAD = "0f3c2b1a-9d8e-4c7b-a6f5-e4d3c2b1a098";
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

describe("splitRecipients", () => {
  it("rejects the one bad recipient with its reason and keeps the others deliverable", () => {
    const split = splitRecipients([
      { aadObjectId: AAD },
      { userPrincipalName: "a\uD800@contoso.com" },
      { teamsUserId: "29:1-ok" },
    ]);
    expect([...split.deliverable.keys()]).toEqual([`aadObjectId:${AAD}`, "teamsUserId:29:1-ok"]);
    expect(split.rejected).toEqual([
      {
        recipientKey: "invalid:1",
        recipient: { userPrincipalName: "a\uD800@contoso.com" },
        index: 1,
        reason: expect.stringContaining("well-formed Unicode") as unknown,
      },
    ]);
  });

  it("rejects a value longer than the key-derived limit, without quoting it", () => {
    const long = `${"a".repeat(MAX_RECIPIENT_VALUE_LENGTH)}@contoso.com`;
    const [rejected] = splitRecipients([{ userPrincipalName: long }]).rejected;
    expect(rejected?.reason).toBe(
      `userPrincipalName must be at most ${MAX_RECIPIENT_VALUE_LENGTH} characters`,
    );
  });

  it.each([
    ["null", null],
    ["two identities", { aadObjectId: AAD, teamsUserId: "29:1" }],
    ["an unknown identity", { email: "a@contoso.com" }],
    ["a number", { teamsUserId: 29 }],
    ["a control character", { teamsUserId: "29:\u0000" }],
  ])("rejects %s", (_name, recipient) => {
    expect(splitRecipients([recipient]).rejected).toHaveLength(1);
  });

  it("merges two spellings of one person (case of a UPN) into one delivery", () => {
    const split = splitRecipients([
      { userPrincipalName: "Ada@Contoso.com" },
      { userPrincipalName: "ada@contoso.com" },
    ]);
    expect(split.deliverable.size).toBe(1);
  });

  it("accounts for every recipient, never throws, and delivers only well-formed bounded values", () => {
    const recipient = fc.oneof(
      fc.record({ aadObjectId: fc.uuid() }),
      fc.record({ userPrincipalName: fc.string({ unit: codeUnit, maxLength: 300 }) }),
      fc.record({
        teamsUserId: fc.string({ unit: codeUnit, maxLength: 300 }).map((s) => `29:${s}`),
      }),
      fc.anything(),
    );
    fc.assert(
      fc.property(fc.array(recipient, { maxLength: 30 }), (recipients) => {
        const split = splitRecipients(recipients);
        const kept = new Set(
          recipients.flatMap((r, i) => (split.rejected.some((x) => x.index === i) ? [] : [i])),
        );
        expect(kept.size + split.rejected.length).toBe(recipients.length);
        for (const [key, r] of split.deliverable) {
          expect(recipientKey(r)).toBe(key);
          expect(key.length).toBeLessThanOrEqual(MAX_RECIPIENT_VALUE_LENGTH + 20);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("namesDistinctPeople", () => {
  const OTHER = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
  const TEAM = "19:t@thread.tacv2";

  it("says people named by AAD ids and groups, or by Teams ids and teams, cannot be one person twice", () => {
    expect(namesDistinctPeople([{ aadObjectId: AAD }, { aadObjectId: OTHER }])).toBe(true);
    expect(namesDistinctPeople([{ aadObjectId: AAD }, { groupId: OTHER }])).toBe(true);
    expect(namesDistinctPeople([{ teamsUserId: "29:1-a" }, { teamsUserId: "29:1-b" }])).toBe(true);
    expect(namesDistinctPeople([{ teamId: TEAM }, { teamsUserId: "29:1-a" }])).toBe(true);
  });

  it("says a UPN, or names from both families, may name one person twice", () => {
    expect(namesDistinctPeople([{ userPrincipalName: "a@contoso.com" }])).toBe(false);
    expect(
      namesDistinctPeople([{ aadObjectId: AAD }, { userPrincipalName: "a@contoso.com" }]),
    ).toBe(false);
    expect(namesDistinctPeople([{ aadObjectId: AAD }, { teamsUserId: "29:1-a" }])).toBe(false);
    expect(namesDistinctPeople([{ groupId: OTHER }, { teamId: TEAM }])).toBe(false);
  });
});
