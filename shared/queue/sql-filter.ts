import { HeraldError } from "../errors";

/**
 * A Service Bus subscription's SQL filter over application properties
 * (https://learn.microsoft.com/azure/service-bus-messaging/service-bus-messaging-sql-filter),
 * translated token by token into an SQLite expression that the local broker evaluates: SQL's
 * own three-valued logic then gives the documented semantics of `=`, `<>`, `!=`, `<`, `>`,
 * `[NOT] IN (…)`, `[NOT] LIKE … [ESCAPE …]` (case-sensitive, as C# compares strings: Learn does
 * not say), `IS [NOT] NULL`, `AND`, `OR`, `NOT` and parentheses over string, numeric and boolean
 * literals (and arithmetic, which SQLite evaluates as SQL does). A property (plain,
 * `[delimited]`, `"quoted"`, or `user.`-scoped; names are case-insensitive) becomes a look-up in
 * the bound `:p`, the message's properties with lower-cased names: missing is NULL, SQL's
 * unknown. Only those tokens pass, so no other SQL can get in; system properties (`sys.`) are
 * refused, and a filter SQLite cannot parse is refused with its reason.
 */
export class FilterError extends HeraldError {}

/** Service Bus' limit on a filter expression. */
export const MAX_FILTER_LENGTH = 1024;

const TOKEN =
  /\s*(?:('(?:[^']|'')*')|\[((?:[^\]]|\]\])*)\]|"((?:[^"]|"")*)"|(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(\p{L}[_\p{L}\p{Nd}]*)|(<>|!=|<=|>=|[=<>(),+\-*/%]))/uy;
const KEYWORDS = new Set([
  "and",
  "or",
  "not",
  "in",
  "like",
  "escape",
  "is",
  "null",
  "true",
  "false",
]);

/** The SQLite expression for `filter`; throws FilterError for what it cannot translate. */
export function filterToSql(filter: string): string {
  if (filter.length > MAX_FILTER_LENGTH)
    throw new FilterError(`Filter: ${filter.length} characters; at most ${MAX_FILTER_LENGTH}`);
  const out: string[] = [];
  TOKEN.lastIndex = 0;
  while (!/^\s*$/.test(filter.slice(TOKEN.lastIndex))) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(filter);
    if (m === null) throw new FilterError(`Filter "${filter}": unexpected text at ${at + 1}`);
    const [, text, bracketed, quoted, num, word, symbol] = m;
    let name = bracketed?.replaceAll("]]", "]") ?? quoted?.replaceAll('""', '"');
    if (word !== undefined && KEYWORDS.has(word.toLowerCase())) out.push(word.toUpperCase());
    else if (word !== undefined && /^(user|sys)$/i.test(word) && filter[TOKEN.lastIndex] === ".") {
      if (word.toLowerCase() === "sys")
        throw new FilterError(`Filter "${filter}": system properties (sys.) are not supported`);
      TOKEN.lastIndex += 1; // user.<name>: the default scope
    } else name ??= word;
    if (name !== undefined) {
      const key = name.toLowerCase().replaceAll("'", "''");
      out.push(`(SELECT value FROM json_each(:p) WHERE key = '${key}')`);
    } else if (word === undefined) out.push(text ?? num ?? symbol!);
  }
  return out.join(" ");
}

/** A message's properties as a filter sees them: names lower-cased. */
export function filterProperties(properties: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(
    Object.fromEntries(Object.entries(properties).map(([k, v]) => [k.toLowerCase(), v])),
  );
}
