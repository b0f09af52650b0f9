import fc from "fast-check";

import { MAX_RECIPIENT_VALUE_LENGTH } from "../../shared/model/recipient";
import { encodeKey, MAX_ENCODED_KEY_LENGTH } from "../../shared/store/table-factory";

/** Any UTF-16 code unit, lone surrogates included. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const anyString = fc.string({ unit: codeUnit, maxLength: 400 });
/** Strings around the limit: mostly ASCII, some multi-byte, near and over 255 encoded. */
const nearLimit = fc.oneof(
  fc.string({ unit: "grapheme-ascii", minLength: 240, maxLength: 270 }),
  fc.string({ unit: "binary", minLength: 20, maxLength: 120 }),
  fc.string({ unit: codeUnit, minLength: 80, maxLength: 300 }),
);
const legacy = (value: string) => encodeURIComponent(value).replace(/%/g, "~");

describe("encodeKey", () => {
  it("limits a recipient value to one key part less the longest recipient kind prefix", () => {
    expect(MAX_RECIPIENT_VALUE_LENGTH + "userPrincipalName:".length).toBe(MAX_ENCODED_KEY_LENGTH);
  });

  it("never throws, and returns a key of at most the limit in characters Table keys allow", () => {
    fc.assert(
      fc.property(fc.oneof(anyString, nearLimit), (value) => {
        const key = encodeKey(value);
        expect(key.length).toBeLessThanOrEqual(MAX_ENCODED_KEY_LENGTH);
        expect(key).toMatch(/^[A-Za-z0-9\-_.!*'()~]*$/);
      }),
      { numRuns: 2000 },
    );
  });

  it("gives different values different keys (lone surrogates, '~' and long values included)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.oneof(anyString, nearLimit), { minLength: 2, maxLength: 20 }),
        (values) => {
          const keys = new Set(values.map(encodeKey));
          expect(keys.size).toBe(values.length);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("tells apart values the old encoding merged", () => {
    expect(encodeKey("a%41@contoso.com")).not.toBe(encodeKey("a~41@contoso.com"));
    expect(encodeKey("\uD800")).not.toBe(encodeKey("\uDC00"));
    expect(encodeKey("\uD800")).not.toBe(encodeKey("\uFFFD"));
  });

  it("gives a value of unescaped characters back as is when it fits, and hashes it when it does not", () => {
    const plain = fc.string({
      unit: fc.constantFrom(..."abcXYZ019-_.!*'()"),
      maxLength: MAX_ENCODED_KEY_LENGTH + 40,
    });
    fc.assert(
      fc.property(plain, (value) => {
        const key = encodeKey(value);
        if (value.length <= MAX_ENCODED_KEY_LENGTH) expect(key).toBe(value);
        else expect(key).toMatch(/~h[0-9a-f]{64}$/);
        expect(key.length).toBeLessThanOrEqual(MAX_ENCODED_KEY_LENGTH);
      }),
      { numRuns: 1000 },
    );
    expect(encodeKey("a".repeat(MAX_ENCODED_KEY_LENGTH + 1))).not.toBe(
      encodeKey("a".repeat(MAX_ENCODED_KEY_LENGTH + 2)),
    );
  });

  it("keeps the old key for every value without '~' whose encoding fits, so stored rows are found", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), (value) => {
        fc.pre(!value.includes("~") && legacy(value).length <= MAX_ENCODED_KEY_LENGTH);
        expect(encodeKey(value)).toBe(legacy(value));
      }),
      { numRuns: 1000 },
    );
  });

  it("keeps a readable head of a long value and marks the hash", () => {
    const key = encodeKey(`${"a".repeat(300)}@contoso.com`);
    expect(key.startsWith("a".repeat(100))).toBe(true);
    expect(key).toMatch(/~h[0-9a-f]{64}$/);
    expect(key).toHaveLength(MAX_ENCODED_KEY_LENGTH);
  });
});
