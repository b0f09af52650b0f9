import { createHash } from "node:crypto";

import type { InvocationContext } from "@azure/functions";

export type LogProperties = Record<string, string | number | boolean | undefined>;

/**
 * Structured logging: one line per event, message first, then a JSON object of properties
 * so Application Insights (and a human) can filter on request id, correlation id, tenant.
 * Never pass secrets or message bodies as properties.
 */
export interface Logger {
  info(message: string, properties?: LogProperties): void;
  warn(message: string, properties?: LogProperties): void;
  error(message: string, properties?: LogProperties): void;
  /** A logger whose every line also carries these properties. */
  with(properties: LogProperties): Logger;
}

type Sink = (level: "info" | "warn" | "error", line: string) => void;

/**
 * A stable, non-reversible token for a recipient in logs: the first 16 hex digits of a
 * SHA-256 of its key (`<kind>:<value>`), prefixed with the kind. The same recipient gets the
 * same token in every line and every instance, so an operator can follow one delivery; the
 * token does not reveal the UPN or id (someone who already knows a UPN can confirm it, as with
 * any hash; it is pseudonymous, not anonymous). Logs hold no personal data
 * (docs/notifications.md, "Logs").
 */
export function recipientToken(recipientKey: string): string {
  const colon = recipientKey.indexOf(":");
  const kind = colon > 0 ? recipientKey.slice(0, colon) : "recipient";
  const digest = createHash("sha256").update(`herald-recipient|${recipientKey}`).digest("hex");
  return `${kind}#${digest.slice(0, 16)}`;
}

/**
 * E-mail addresses and UPNs (`local@domain.tld`), but not Teams thread ids
 * (`19:…@thread.tacv2`), which are not personal.
 */
const EMAIL_LIKE = /[^\s"'<>()[\]{},;:@]+@(?!thread\.)[^\s"'<>()[\]{},;:@]+\.[A-Za-z]{2,}/g;

/**
 * The last line of defence for class "no personal data in logs": every line is scrubbed of
 * e-mail-like text before it leaves the process, whatever a caller passed. Callers should
 * still log `recipientToken(...)` or a kind, never the value.
 */
export function redactPersonalData(line: string): string {
  return line.includes("@") ? line.replace(EMAIL_LIKE, "[redacted e-mail]") : line;
}

/** `{"a":1,"b":2}` → `"a":1,"b":2`: undefined values are left out, as JSON.stringify does. */
function propertiesText(properties: LogProperties | undefined): string {
  if (properties === undefined) return "";
  const json = JSON.stringify(properties);
  return json.length <= 2 ? "" : json.slice(1, -1);
}

function hasSharedKey(a: LogProperties, b: LogProperties): boolean {
  for (const key in b) if (Object.hasOwn(a, key)) return true;
  return false;
}

function build(sink: Sink, base: LogProperties): Logger {
  // A logger's own properties are serialised once, on its first line, not on every line.
  let baseJson: string | undefined;
  const emit = (level: "info" | "warn" | "error", message: string, props?: LogProperties) => {
    const baseText = (baseJson ??= propertiesText(base));
    // A line's property that repeats one of the logger's replaces it (the rare case: merged).
    const text =
      props === undefined
        ? baseText
        : hasSharedKey(base, props)
          ? propertiesText({ ...base, ...props })
          : joinText(baseText, propertiesText(props));
    sink(level, redactPersonalData(text === "" ? message : `${message} {${text}}`));
  };
  return {
    info: (m, p) => emit("info", m, p),
    warn: (m, p) => emit("warn", m, p),
    error: (m, p) => emit("error", m, p),
    with: (p) => build(sink, { ...base, ...p }),
  };
}

function joinText(a: string, b: string): string {
  return a === "" ? b : b === "" ? a : `${a},${b}`;
}

export function contextLogger(context: InvocationContext, base: LogProperties = {}): Logger {
  return build((level, line) => context[level](line), base);
}

export function consoleLogger(base: LogProperties = {}): Logger {
  return build((level, line) => console[level](line), base);
}

/** Collects lines in memory: for tests that assert what was logged. */
export function memoryLogger(): Logger & { lines: { level: string; line: string }[] } {
  const lines: { level: string; line: string }[] = [];
  return Object.assign(
    build((level, line) => lines.push({ level, line }), {}),
    { lines },
  );
}
