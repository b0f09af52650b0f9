/**
 * A structural check of untrusted JSON values, run before a schema library walks them.
 *
 * zod (like most validators) recurses once per nesting level, and `JSON.stringify` does too,
 * so a deeply nested body (`[[[[…]]]]`, an Adaptive Card of nested containers) overflows the
 * stack before any rule runs: a 500 at the HTTP boundary, an unrecorded message on the queue.
 * `JSON.parse` itself is iterative in V8, so the value exists; this walk is iterative as well
 * (an explicit stack), bounded in the work it does, and reports the first problems it finds
 * by path. It also rejects strings (values and property names) that are not well-formed
 * UTF-16: a lone surrogate cannot be encoded as UTF-8 (`encodeURIComponent` throws on it,
 * Table Storage and Teams would store or show U+FFFD instead), so it is refused here, where
 * the caller learns which field it was.
 */

export interface JsonLimits {
  /** Deepest nesting of objects and arrays (the root object is depth 1). */
  readonly maxDepth: number;
  /** Objects, arrays and primitives together: bounds the walk's time. */
  readonly maxNodes: number;
  /** Longest property name, in UTF-16 code units. */
  readonly maxKeyLength?: number;
}

/** One problem with a value, named by its path: the one error shape of every parse. */
export interface FieldError {
  /** Dotted path of the offending value; `(body)` for the root. */
  readonly path: string;
  readonly message: string;
}

/** Shown paths are cut to this many characters (a hostile key must not come back whole). */
export const MAX_SHOWN_PATH = 200;
/** Issues reported per walk. */
const MAX_ISSUES = 10;
const DEFAULT_MAX_KEY = 256;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when `text` is well-formed UTF-16 (every surrogate is part of a pair). */
export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/**
 * Replaces lone surrogates with U+FFFD: for text Herald quotes back or logs, never for a value
 * it stores as an identity (those are refused instead).
 */
export function toWellFormed(text: string): string {
  return isWellFormed(text)
    ? text
    : text.replace(
        /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
        "\uFFFD",
      );
}

/**
 * Cuts `text` to at most `max` UTF-16 code units without splitting a surrogate pair, marking a
 * cut with "…"; the result is well-formed.
 */
export function clip(text: string, max: number): string {
  const safe = toWellFormed(text);
  if (safe.length <= max) return safe;
  let end = Math.max(0, max - 1);
  const last = safe.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${safe.slice(0, end)}…`;
}

/** A path for people: segments joined by ".", cut to `MAX_SHOWN_PATH`, always well-formed. */
export function showPath(segments: readonly (string | number)[]): string {
  if (segments.length === 0) return "(body)";
  return clip(
    segments.map((s) => (typeof s === "number" ? String(s) : clip(s, 64))).join("."),
    MAX_SHOWN_PATH,
  );
}

interface Frame {
  readonly value: unknown;
  readonly path: readonly (string | number)[];
  readonly depth: number;
}

/**
 * Walks `value` iteratively; returns the problems found (empty = structurally fine).
 * Stops at the first limit it hits (depth or size: deeper checks would only add noise) and
 * after `MAX_ISSUES` string problems.
 */
export function checkJson(value: unknown, limits: JsonLimits): FieldError[] {
  const maxKey = limits.maxKeyLength ?? DEFAULT_MAX_KEY;
  const issues: FieldError[] = [];
  const stack: Frame[] = [{ value, path: [], depth: 0 }];
  let nodes = 1;
  const tooMany = (): FieldError[] => {
    issues.push({
      path: "(body)",
      message: `has more than ${limits.maxNodes} values; make it smaller`,
    });
    return issues;
  };
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const current = frame.value;
    if (typeof current === "string") {
      if (!isWellFormed(current))
        issues.push({
          path: showPath(frame.path),
          message: "must be well-formed Unicode (it contains a lone UTF-16 surrogate)",
        });
    } else if (typeof current === "object" && current !== null) {
      const depth = frame.depth + 1;
      if (depth > limits.maxDepth) {
        issues.push({
          path: showPath(frame.path),
          message: `is nested more than ${limits.maxDepth} levels deep`,
        });
        return issues;
      }
      if (Array.isArray(current)) {
        nodes += current.length;
        if (nodes > limits.maxNodes) return tooMany();
        for (let i = current.length - 1; i >= 0; i--)
          stack.push({ value: current[i] as unknown, path: [...frame.path, i], depth });
      } else {
        const keys = Object.keys(current);
        nodes += keys.length;
        if (nodes > limits.maxNodes) return tooMany();
        for (const key of keys) {
          if (!isWellFormed(key) || key.length > maxKey) {
            issues.push({
              path: showPath([...frame.path, key]),
              message: !isWellFormed(key)
                ? "property name must be well-formed Unicode (it contains a lone UTF-16 surrogate)"
                : `property name must be at most ${maxKey} characters`,
            });
            continue;
          }
          stack.push({
            value: (current as Record<string, unknown>)[key],
            path: [...frame.path, key],
            depth,
          });
        }
      }
    }
    if (issues.length >= MAX_ISSUES) return issues;
  }
  return issues;
}
