import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

import { ConfigError } from "../errors";

/** Everything a local run keeps (git-ignored): the queue, Azurite's tables, logs. */
export const DATA_FOLDER = ".data";
/** The data folder's Azurite keeps its tables (and its lock and log) here. */
export const AZURITE_FOLDER = join(DATA_FOLDER, "azurite");

/** The folder holding package.json, found from this file whether run from `dist/` or sources. */
export function findProjectRoot(start: string = __dirname): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "host.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(`No Functions project (package.json + host.json) above ${start}`);
    dir = parent;
  }
}

/**
 * `local.settings.json` `Values`, as Core Tools reads them. Optional: `npm start` works without
 * it. A file that exists but is not valid is an error, not something to skip silently.
 */
export function readLocalSettings(projectRoot: string): Record<string, string> | undefined {
  const path = join(projectRoot, "local.settings.json");
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new ConfigError(`local.settings.json: not valid JSON (${(error as Error).message})`);
  }
  const values = (parsed as { Values?: unknown } | null)?.Values;
  if (values === undefined) return {};
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw new ConfigError("local.settings.json: Values must be an object of strings");
  }
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === "string") result[key] = value;
    else if (typeof value === "number" || typeof value === "boolean") result[key] = String(value);
    else throw new ConfigError(`local.settings.json: Values.${key} must be a string`);
  }
  return result;
}

export interface MergedSettings {
  readonly values: Record<string, string>;
  /** local.settings.json keys ignored because the environment already sets them. */
  readonly shadowed: readonly string[];
}

/**
 * Precedence as Core Tools: the process environment wins over local.settings.json, which wins
 * over the built-in defaults. Empty values in local.settings.json count as "not set" only for
 * the defaults (the sample lists every setting, most of them empty).
 */
export function mergeSettings(
  defaults: Readonly<Record<string, string>>,
  local: Readonly<Record<string, string>> | undefined,
  env: NodeJS.ProcessEnv,
): MergedSettings {
  const values: Record<string, string> = {};
  const shadowed: string[] = [];
  for (const [key, value] of Object.entries(defaults)) values[key] = value;
  for (const [key, value] of Object.entries(local ?? {})) {
    if (env[key] !== undefined) {
      shadowed.push(key);
      continue;
    }
    if (value.trim() === "" && defaults[key] !== undefined) continue;
    values[key] = value;
  }
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined) values[key] = value;
  }
  return { values, shadowed };
}

/** Resolves the `%SettingName%` syntax of binding properties, as the host does. */
export function resolveAppSetting(
  value: string,
  settings: Readonly<Record<string, string>>,
): string {
  return value.replace(/%([^%]+)%/g, (_whole, name: string) => {
    const resolved = settings[name];
    if (resolved === undefined || resolved.trim() === "") {
      throw new ConfigError(`${name}: referenced as %${name}% by a function binding, but not set`);
    }
    return resolved;
  });
}

export interface HostSettings {
  readonly routePrefix: string;
  readonly maxConcurrentCalls: number;
  readonly maxAutoLockRenewalMs: number;
  /** Session triggers (the work queue): sessions held at once, calls per session, idle release. */
  readonly maxConcurrentSessions: number;
  readonly maxConcurrentCallsPerSession: number;
  readonly sessionIdleTimeoutMs: number;
}

/** The parts of host.json the local host honours. */
export function readHostJson(projectRoot: string): HostSettings {
  const defaults: HostSettings = {
    routePrefix: "api",
    maxConcurrentCalls: 16,
    maxAutoLockRenewalMs: 5 * 60_000,
    // The Service Bus extension's defaults.
    maxConcurrentSessions: 8,
    maxConcurrentCallsPerSession: 1,
    sessionIdleTimeoutMs: 60_000,
  };
  const path = join(projectRoot, "host.json");
  if (!existsSync(path)) return defaults;
  let json: {
    extensions?: {
      http?: { routePrefix?: unknown };
      serviceBus?: {
        maxConcurrentCalls?: unknown;
        maxAutoLockRenewalDuration?: unknown;
        maxConcurrentSessions?: unknown;
        maxConcurrentCallsPerSession?: unknown;
        sessionIdleTimeout?: unknown;
      };
    };
  };
  try {
    json = JSON.parse(readFileSync(path, "utf8")) as typeof json;
  } catch (error) {
    throw new ConfigError(`host.json: not valid JSON (${(error as Error).message})`);
  }
  const http = json.extensions?.http;
  const serviceBus = json.extensions?.serviceBus;
  const positive = (value: unknown, fallback: number) =>
    typeof value === "number" && Number.isInteger(value) && value > 0 ? value : fallback;
  return {
    routePrefix: typeof http?.routePrefix === "string" ? http.routePrefix : defaults.routePrefix,
    maxConcurrentCalls:
      typeof serviceBus?.maxConcurrentCalls === "number" && serviceBus.maxConcurrentCalls > 0
        ? serviceBus.maxConcurrentCalls
        : defaults.maxConcurrentCalls,
    maxAutoLockRenewalMs:
      typeof serviceBus?.maxAutoLockRenewalDuration === "string"
        ? (parseTimeSpan(serviceBus.maxAutoLockRenewalDuration) ?? defaults.maxAutoLockRenewalMs)
        : defaults.maxAutoLockRenewalMs,
    maxConcurrentSessions: positive(
      serviceBus?.maxConcurrentSessions,
      defaults.maxConcurrentSessions,
    ),
    maxConcurrentCallsPerSession: positive(
      serviceBus?.maxConcurrentCallsPerSession,
      defaults.maxConcurrentCallsPerSession,
    ),
    sessionIdleTimeoutMs:
      typeof serviceBus?.sessionIdleTimeout === "string"
        ? (parseTimeSpan(serviceBus.sessionIdleTimeout) ?? defaults.sessionIdleTimeoutMs)
        : defaults.sessionIdleTimeoutMs,
  };
}

/** `[d.]hh:mm:ss[.fff]` as host.json writes durations. */
export function parseTimeSpan(value: string): number | undefined {
  const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(value.trim());
  if (!match) return undefined;
  const [, days, hours, minutes, seconds, fraction] = match;
  return (
    ((Number(days ?? 0) * 24 + Number(hours)) * 3600 + Number(minutes) * 60 + Number(seconds)) *
      1000 +
    Math.round(Number(`0.${fraction ?? "0"}`) * 1000)
  );
}
