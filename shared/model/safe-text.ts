/**
 * Characters a notification may not show. Teams renders message text, previews and card text to
 * people, and some code points change what they see without being seen themselves:
 * - C0 and C1 control characters (NUL, BEL, ESC, …, and U+007F-U+009F): no meaning in a chat
 *   message, garbled or dropped on some clients; tab, line feed and carriage return stay;
 * - the bidirectional overrides and isolates U+202A-U+202E and U+2066-U+2069, which reorder the
 *   characters around them: a right-to-left override makes `invoice.exe` read as `invoice.png`
 *   (CVE-2021-42574 "Trojan Source" is the same trick in source code;
 *   https://www.unicode.org/reports/tr36/#Bidirectional_Text_Spoofing). Right-to-left text needs
 *   none of them (the Unicode bidirectional algorithm orders it); the marks U+200E and U+200F,
 *   which reorder nothing around them, stay allowed.
 */

/** The refused code points as a regular-expression character class (for the JSON Schema too). */
export const UNSAFE_TEXT_CLASS =
  "[\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069]";

const UNSAFE = new RegExp(UNSAFE_TEXT_CLASS);

const NAMES: Readonly<Record<number, string>> = {
  0x00: "NUL",
  0x07: "BEL",
  0x08: "BACKSPACE",
  0x1b: "ESC",
  0x7f: "DELETE",
  0x202a: "LEFT-TO-RIGHT EMBEDDING",
  0x202b: "RIGHT-TO-LEFT EMBEDDING",
  0x202c: "POP DIRECTIONAL FORMATTING",
  0x202d: "LEFT-TO-RIGHT OVERRIDE",
  0x202e: "RIGHT-TO-LEFT OVERRIDE",
  0x2066: "LEFT-TO-RIGHT ISOLATE",
  0x2067: "RIGHT-TO-LEFT ISOLATE",
  0x2068: "FIRST STRONG ISOLATE",
  0x2069: "POP DIRECTIONAL ISOLATE",
};

/**
 * Why `text` may not be shown, naming the first refused character by code point (and position,
 * counted from 1), or undefined when it may.
 */
export function unsafeTextProblem(text: string): string | undefined {
  const found = UNSAFE.exec(text);
  if (found === null) return undefined;
  const code = found[0].charCodeAt(0);
  const point = `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  const kind = code >= 0x2000 ? "a bidirectional override or isolate" : "a control character";
  const name = NAMES[code];
  return `must not contain control characters (other than tab, CR and LF) or bidirectional overrides and isolates: found ${point}${name !== undefined ? ` ${name}` : ""} (${kind}) at character ${found.index + 1}`;
}

/** Each refused string in a JSON value (an Adaptive Card), with its path; walked iteratively. */
export function* unsafeStrings(
  value: unknown,
): Generator<{ readonly path: readonly (string | number)[]; readonly problem: string }> {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const current = next.value;
    if (typeof current === "string") {
      const problem = unsafeTextProblem(current);
      if (problem !== undefined) yield { path: next.path, problem };
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--)
        stack.push({ value: current[i], path: [...next.path, i] });
    } else if (typeof current === "object" && current !== null) {
      const entries = Object.entries(current);
      for (let i = entries.length - 1; i >= 0; i--)
        stack.push({ value: entries[i]![1], path: [...next.path, entries[i]![0]] });
    }
  }
}
