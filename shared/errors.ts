/** Errors Herald raises on purpose; anything else reaching a trigger is unexpected. */
export class HeraldError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A setting is missing or malformed; the message names every bad setting. */
export class ConfigError extends HeraldError {}

/**
 * A table the deployment should have created is missing: not a setting (work that meets it is
 * redelivered, not settled as unreachable), and not a missing row.
 */
export class MissingTableError extends HeraldError {}

/** Input from outside (activity, queue message, HTTP body) failed validation. */
export class ValidationError extends HeraldError {
  constructor(
    message: string,
    readonly issues: readonly { path: string; message: string }[] = [],
  ) {
    super(message);
  }
}

export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  if (typeof value === "string") return new Error(value);
  try {
    return new Error(JSON.stringify(value));
  } catch {
    return new Error(String(value));
  }
}

/** HTTP status of an Azure SDK / botbuilder REST error, if it carries one. */
export function statusCodeOf(error: unknown): number | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const candidate = error as { statusCode?: unknown; status?: unknown };
  if (typeof candidate.statusCode === "number") return candidate.statusCode;
  if (typeof candidate.status === "number") return candidate.status;
  return undefined;
}

/** The local Table Storage (the data folder's Azurite process) cannot be reached or started. */
export class LocalTablesError extends HeraldError {}
