import { clip, type FieldError } from "../validation/json-guard";

/**
 * Azure Table Storage's limits, and what Herald derives from them for what it stores
 * (https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model).
 *
 * - Keys: 1 KiB each in Azure; Azurite refuses more than 512 characters. Herald's longest key
 *   joins two encoded parts with "|", so one encoded part is at most 255 characters
 *   (`encodeKey` hashes the tail of anything longer).
 * - A string property: 64 KiB as UTF-16, i.e. 32,768 code units. An entity: 1 MiB.
 */
export const MAX_ENCODED_KEY_LENGTH = 255;

/** One Table string property, in UTF-16 code units, with room to spare. */
export const MAX_STRING_PROPERTY = 32_000;

/**
 * Text longer than one string property, stored in parts: `<name>`, `<name>1`, `<name>2`, …
 * (an entity holds 1 MiB, so about 15 parts fit beside a row's other properties).
 */
export function textParts(name: string, text: string | undefined): Record<string, string> {
  if (text === undefined) return {};
  const parts: Record<string, string> = {};
  for (let i = 0, at = 0; at < text.length || i === 0; i++, at += MAX_STRING_PROPERTY)
    parts[i === 0 ? name : `${name}${i}`] = text.slice(at, at + MAX_STRING_PROPERTY);
  return parts;
}

export function joinTextParts(name: string, entity: Record<string, unknown>): string | undefined {
  const first = entity[name];
  if (typeof first !== "string") return undefined;
  let text = first;
  for (let i = 1; typeof entity[`${name}${i}`] === "string"; i++)
    text += entity[`${name}${i}`] as string;
  return text;
}

/** Display names (users, teams) as stored: Teams' own names are far shorter. */
export const MAX_STORED_NAME = 256;

/** Identity text (UPN, e-mail) longer than this is not stored: no real one is. */
export const MAX_STORED_IDENTITY = 256;

/** Field errors kept with a rejected request, and the length of each path and message. */
export const MAX_STORED_ERRORS = 50;
export const MAX_STORED_ERROR_TEXT = 300;

/** A display name as stored: cut to `MAX_STORED_NAME`, well-formed. */
export function storedName(name: string | undefined): string | undefined {
  return name === undefined ? undefined : clip(name, MAX_STORED_NAME);
}

/** Identity text as stored: dropped (unknown) when it cannot be real, never cut. */
export function storedIdentity(value: string | undefined): string | undefined {
  return value === undefined || value.length > MAX_STORED_IDENTITY ? undefined : value;
}

/**
 * A rejected request's errors as stored and shown: at most `MAX_STORED_ERRORS`, each path and
 * message cut, and a last entry saying how many more there were.
 */
export function storedErrors(
  errors: readonly FieldError[],
  max: number = MAX_STORED_ERRORS,
): FieldError[] {
  const kept = errors.slice(0, max).map((e) => ({
    path: clip(e.path, MAX_STORED_ERROR_TEXT),
    message: clip(e.message, MAX_STORED_ERROR_TEXT),
  }));
  if (errors.length > max)
    kept.push({ path: "(body)", message: `and ${errors.length - max} more errors` });
  return kept;
}
