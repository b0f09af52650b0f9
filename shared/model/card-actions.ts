import { randomBytes, timingSafeEqual } from "node:crypto";

import { z } from "zod";

import { guidSchema } from "./recipient";

/**
 * Herald's part of a card's buttons, pure: which actions it stamps, the reference it adds to
 * their `data`, and how a click's `data` splits back into that reference and the user's inputs.
 *
 * The reference names (tenant, request, recipient, revision) and carries a random token that
 * Herald stores with the recipient's delivery row (written by the claim before the send, so no
 * extra Table request). A click is genuine only when its token equals the stored one: nobody can
 * guess 128 random bits, and a token copied to another request or recipient does not match that
 * row's. No signing key to deploy, rotate or leak, and a recall leaves nothing to revoke.
 */

/** The property Herald adds to each `Action.Execute` / `Action.Submit` `data`. */
export const CARD_REFERENCE_KEY = "_herald";

/** Actions whose click reaches the bot (https://adaptivecards.io/explorer/Action.Execute.html). */
const CLICK_ACTION_TYPES: ReadonlySet<string> = new Set(["Action.Execute", "Action.Submit"]);

/** Teams renders `Action.Execute` from this version on (Universal Actions). */
export const EXECUTE_MIN_VERSION = "1.5";

export const cardReferenceSchema = z.strictObject({
  /** Tenant. */
  t: guidSchema,
  /** Request id. */
  r: z.string().min(1).max(128),
  /** The recipient's key in the delivery ledger. */
  k: z.string().min(1).max(1_100),
  /** The revision the copy shows. */
  v: z.number().int().min(1).max(1_000_000),
  /** The token stored with the delivery row. */
  s: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
});

export type CardReference = z.infer<typeof cardReferenceSchema>;

/** A new token for a delivery row (128 random bits, base64url). */
export function newCardToken(): string {
  return randomBytes(16).toString("base64url");
}

/** Whether the click's token is the row's, compared in constant time. */
export function sameToken(stored: string | undefined, clicked: string): boolean {
  if (stored === undefined) return false;
  const a = Buffer.from(stored);
  const b = Buffer.from(clicked);
  return a.length === b.length && timingSafeEqual(a, b);
}

type Json = unknown;

function isObject(value: Json): value is Record<string, Json> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isClickAction(value: Json): value is Record<string, Json> {
  return isObject(value) && typeof value.type === "string" && CLICK_ACTION_TYPES.has(value.type);
}

/** Every click action in a card (root actions, action sets, select actions, show cards, refresh). */
function* clickActions(
  value: Json,
  path: (string | number)[] = [],
): Generator<{ action: Record<string, Json>; path: (string | number)[] }> {
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) yield* clickActions(item, [...path, i]);
  } else if (isObject(value)) {
    if (isClickAction(value)) yield { action: value, path };
    for (const [key, item] of Object.entries(value))
      if (typeof item === "object" && item !== null) yield* clickActions(item, [...path, key]);
  }
}

/** True when a click on the card reaches Herald (it has an Execute or Submit action). */
export function hasClickActions(card: Json): boolean {
  return !clickActions(card).next().done;
}

function versionBelow(version: Json, minimum: string): boolean {
  if (typeof version !== "string") return true;
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const [minMajor = 0, minMinor = 0] = minimum.split(".").map(Number);
  return major < minMajor || (major === minMajor && minor < minMinor);
}

export interface CardProblem {
  readonly path: (string | number)[];
  readonly message: string;
}

/** What Herald refuses in a card's actions at intake, each with the path of its action. */
export function cardActionProblems(card: Record<string, Json>): CardProblem[] {
  const problems: CardProblem[] = [];
  for (const { action, path } of clickActions(card)) {
    if (action.type === "Action.Execute" && versionBelow(card.version, EXECUTE_MIN_VERSION))
      problems.push({
        path,
        message: `Action.Execute needs an Adaptive Card of version ${EXECUTE_MIN_VERSION} (Teams may not render it in version ${String(card.version)}); set "version": "${EXECUTE_MIN_VERSION}" or use Action.Submit`,
      });
    if (action.data !== undefined && !isObject(action.data))
      problems.push({
        path: [...path, "data"],
        message: "must be an object, so that Herald can add its reference to the click",
      });
    else if (isObject(action.data) && Object.hasOwn(action.data, CARD_REFERENCE_KEY))
      problems.push({
        path: [...path, "data", CARD_REFERENCE_KEY],
        message: `is Herald's own field in a click's data; use another name`,
      });
  }
  return problems;
}

/**
 * The card with `reference` added to each click action's `data` (the LOB's fields kept as they
 * were). The card itself is not changed: what is stamped is copied.
 */
export function stampCard<T>(card: T, reference: CardReference): T {
  const stamp = (value: Json): Json => {
    if (Array.isArray(value)) return value.map(stamp);
    if (!isObject(value)) return value;
    const copy: Record<string, Json> = {};
    for (const [key, item] of Object.entries(value))
      copy[key] = typeof item === "object" && item !== null ? stamp(item) : item;
    if (isClickAction(value))
      copy.data = { ...(isObject(value.data) ? value.data : {}), [CARD_REFERENCE_KEY]: reference };
    return copy;
  };
  return stamp(card) as T;
}

/**
 * The card with every click action taken out (root and set actions, select actions, the
 * Universal Actions `refresh`), and action sets left empty dropped: a copy that was answered
 * cannot be pressed again on any device. Other actions (open URL, show card) stay.
 */
export function withoutClickActions<T>(card: T): T {
  const strip = (value: Json): Json => {
    if (Array.isArray(value))
      return value
        .filter((item) => !isClickAction(item))
        .map(strip)
        .filter(
          (item) =>
            !(
              isObject(item) &&
              item.type === "ActionSet" &&
              Array.isArray(item.actions) &&
              item.actions.length === 0
            ),
        );
    if (!isObject(value)) return value;
    const copy: Record<string, Json> = {};
    for (const [key, item] of Object.entries(value)) {
      if (key === "refresh" || (key === "selectAction" && isClickAction(item))) continue;
      copy[key] = typeof item === "object" && item !== null ? strip(item) : item;
    }
    return copy;
  };
  return strip(card) as T;
}

/** A click's `data` split into Herald's reference (unparsed) and the user's inputs. */
export function splitClickData(data: Json): { reference: Json; inputs: Record<string, Json> } {
  if (!isObject(data)) return { reference: undefined, inputs: {} };
  const { [CARD_REFERENCE_KEY]: reference, ...inputs } = data;
  return { reference, inputs };
}

/** The longest verb a request may answer. */
export const MAX_VERB_LENGTH = 64;
