/**
 * Functions route templates (`notifications/{id}`, `{id?}`, `{id:guid}`, `{*rest}`), matched
 * the way the host's ASP.NET routing does for the cases Herald uses: literal segments are
 * case-insensitive, and a more specific template wins over a more general one.
 */
export interface CompiledRoute {
  readonly template: string;
  match(pathSegments: readonly string[]): Record<string, string> | undefined;
  /** Lower sorts first: literals before parameters before optional and catch-all ones. */
  readonly rank: readonly number[];
}

type Segment =
  | { kind: "literal"; text: string }
  | {
      kind: "param";
      name: string;
      optional: boolean;
      catchAll: boolean;
      constraint: ((v: string) => boolean) | undefined;
    };

const CONSTRAINTS: Record<string, (v: string) => boolean> = {
  int: (v) => /^-?\d+$/.test(v),
  long: (v) => /^-?\d+$/.test(v),
  guid: (v) => /^\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$/i.test(v),
  alpha: (v) => /^[a-z]+$/i.test(v),
  bool: (v) => /^(true|false)$/i.test(v),
};

function parseSegment(raw: string, template: string): Segment {
  const param = /^\{(\*{1,2})?([A-Za-z_][A-Za-z0-9_]*)(?::([^}?=]+))?(\?)?\}$/.exec(raw);
  if (!param) {
    if (raw.includes("{") || raw.includes("}")) {
      throw new Error(`Route "${template}": segment "${raw}" is not supported by the local host`);
    }
    return { kind: "literal", text: raw.toLowerCase() };
  }
  const constraintName = param[3]?.split(":")[0];
  return {
    kind: "param",
    name: param[2]!,
    catchAll: param[1] !== undefined,
    optional: param[4] !== undefined,
    // Unknown constraints (regex(), min(), …) are not enforced locally.
    constraint: constraintName ? CONSTRAINTS[constraintName.toLowerCase()] : undefined,
  };
}

export function splitPath(path: string): string[] {
  return path.split("/").filter((s) => s !== "");
}

export function compileRoute(template: string): CompiledRoute {
  const segments = splitPath(template).map((raw) => parseSegment(raw, template));
  const rank = segments.map((s) => {
    if (s.kind === "literal") return 0;
    if (s.catchAll) return 4;
    if (s.optional) return 3;
    return s.constraint ? 1 : 2;
  });
  return {
    template,
    rank,
    match(path) {
      const params: Record<string, string> = {};
      for (let i = 0; i < segments.length; i += 1) {
        const segment = segments[i]!;
        const value = path[i];
        if (segment.kind === "literal") {
          if (value === undefined || decode(value)?.toLowerCase() !== segment.text)
            return undefined;
          continue;
        }
        if (segment.catchAll) {
          const rest = path.slice(i).map(decode);
          if (rest.some((v) => v === undefined)) return undefined;
          if (rest.length > 0) params[segment.name] = rest.join("/");
          return params;
        }
        if (value === undefined) {
          if (segment.optional) continue;
          return undefined;
        }
        const decoded = decode(value);
        if (decoded === undefined) return undefined;
        if (segment.constraint && !segment.constraint(decoded)) return undefined;
        params[segment.name] = decoded;
      }
      return path.length <= segments.length ? params : undefined;
    },
  };
}

/** Orders routes so the first match is the most specific one. */
export function compareRoutes(a: CompiledRoute, b: CompiledRoute): number {
  for (let i = 0; i < Math.max(a.rank.length, b.rank.length); i += 1) {
    const x = a.rank[i] ?? -1;
    const y = b.rank[i] ?? -1;
    if (x !== y) return x - y;
  }
  return 0;
}

function decode(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}
