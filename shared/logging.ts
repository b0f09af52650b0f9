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

function build(sink: Sink, base: LogProperties): Logger {
  const emit = (level: "info" | "warn" | "error", message: string, props?: LogProperties) => {
    const merged = { ...base, ...props };
    const keys = Object.keys(merged).filter((k) => merged[k] !== undefined);
    sink(level, keys.length === 0 ? message : `${message} ${JSON.stringify(merged)}`);
  };
  return {
    info: (m, p) => emit("info", m, p),
    warn: (m, p) => emit("warn", m, p),
    error: (m, p) => emit("error", m, p),
    with: (p) => build(sink, { ...base, ...p }),
  };
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
