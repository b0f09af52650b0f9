/**
 * Reads the ARM JSON the Bicep compiler writes: template expressions (`[concat(...)]`) parsed into
 * a small tree, and module parameters, variables and `if()` branches followed, so tests can list
 * the app settings and role assignments the deployment will really carry.
 */

export type ArmExpr =
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "number"; readonly value: number }
  | { readonly kind: "call"; readonly name: string; readonly args: readonly ArmExpr[] }
  | { readonly kind: "member"; readonly target: ArmExpr; readonly name: string }
  | { readonly kind: "index"; readonly target: ArmExpr; readonly index: ArmExpr };

/** Parses one template expression (the text between `[` and `]`). */
export function parseArmExpression(text: string): ArmExpr {
  let at = 0;
  const skip = (): void => {
    while (at < text.length && /\s/.test(text[at]!)) at++;
  };
  const fail = (what: string): never => {
    throw new Error(`ARM expression: ${what} at ${at} in ${text}`);
  };
  const expect = (char: string): void => {
    skip();
    if (text[at] !== char) fail(`expected ${char}`);
    at++;
  };
  const primary = (): ArmExpr => {
    skip();
    const char = text[at];
    if (char === "'") {
      let value = "";
      at++;
      for (;;) {
        if (at >= text.length) fail("unterminated string");
        if (text[at] === "'") {
          if (text[at + 1] === "'") {
            value += "'";
            at += 2;
            continue;
          }
          at++;
          return { kind: "string", value };
        }
        value += text[at++];
      }
    }
    const number = /^-?\d+/.exec(text.slice(at));
    if (number !== null) {
      at += number[0].length;
      return { kind: "number", value: Number(number[0]) };
    }
    const name = /^[A-Za-z_][\w.]*/.exec(text.slice(at));
    if (name === null) return fail("expected a value");
    at += name[0].length;
    expect("(");
    const args: ArmExpr[] = [];
    skip();
    if (text[at] === ")") at++;
    else {
      for (;;) {
        args.push(postfix());
        skip();
        if (text[at] === ",") {
          at++;
          continue;
        }
        expect(")");
        break;
      }
    }
    return { kind: "call", name: name[0], args };
  };
  const postfix = (): ArmExpr => {
    let expr = primary();
    for (;;) {
      skip();
      if (text[at] === ".") {
        at++;
        const name = /^[A-Za-z_$][\w$]*/.exec(text.slice(at));
        if (name === null) return fail("expected a property name");
        at += name[0].length;
        expr = { kind: "member", target: expr, name: name[0] };
      } else if (text[at] === "[") {
        at++;
        const index = postfix();
        expect("]");
        expr = { kind: "index", target: expr, index };
      } else return expr;
    }
  };
  const expr = postfix();
  skip();
  if (at !== text.length) fail("trailing text");
  return expr;
}

/** A JSON value of the template, or the expression a `[...]` string holds. */
export type ArmValue = unknown;

export function expressionOf(value: ArmValue): ArmExpr | undefined {
  if (typeof value !== "string" || !value.startsWith("[") || value.startsWith("[[")) return;
  return parseArmExpression(value.slice(1, -1));
}

/** Source-like text of an expression, for assertions (`parameters('x')`). */
export function armText(expr: ArmExpr): string {
  switch (expr.kind) {
    case "string":
      return `'${expr.value.replace(/'/g, "''")}'`;
    case "number":
      return String(expr.value);
    case "call":
      return `${expr.name}(${expr.args.map(armText).join(", ")})`;
    case "member":
      return `${armText(expr.target)}.${expr.name}`;
    case "index":
      return `${armText(expr.target)}[${armText(expr.index)}]`;
  }
}

export interface ArmTemplate {
  readonly parameters?: Record<
    string,
    { defaultValue?: unknown; minValue?: number; maxValue?: number }
  >;
  readonly variables?: Record<string, unknown>;
  /** languageVersion 2.0 keys resources by symbolic name; 1.0 lists them. */
  readonly resources: Record<string, ArmResource> | readonly ArmResource[];
  readonly outputs?: Record<string, { type: string; value: unknown }>;
}

export interface ArmResource {
  readonly type: string;
  readonly apiVersion?: string;
  readonly name: string;
  readonly scope?: string;
  readonly copy?: { name: string; count: string };
  readonly properties?: Record<string, unknown> & {
    template?: ArmTemplate;
    parameters?: Record<string, { value: unknown }>;
  };
  readonly [key: string]: unknown;
}

/** A template with the parameter values its parent deployment passes (undefined at the top). */
export interface Scope {
  readonly template: ArmTemplate;
  readonly parent?: { scope: Scope; parameters: Record<string, { value: unknown }> };
}

export function resourcesOf(template: ArmTemplate): ArmResource[] {
  return Array.isArray(template.resources)
    ? [...(template.resources as readonly ArmResource[])]
    : Object.values(template.resources as Record<string, ArmResource>);
}

/** Nested deployments (Bicep modules) by their resource, with the scope to read them in. */
export function modulesOf(scope: Scope): { resource: ArmResource; scope: Scope }[] {
  return resourcesOf(scope.template)
    .filter((r) => r.type === "Microsoft.Resources/deployments" && r.properties?.template)
    .map((resource) => ({
      resource,
      scope: {
        template: resource.properties!.template!,
        parent: { scope, parameters: resource.properties!.parameters ?? {} },
      },
    }));
}

/** Every resource of the deployment, modules included, with the scope it is read in. */
export function allResources(scope: Scope): { resource: ArmResource; scope: Scope }[] {
  return [
    ...resourcesOf(scope.template).map((resource) => ({ resource, scope })),
    ...modulesOf(scope).flatMap((m) => allResources(m.scope)),
  ];
}

/** Follows `parameters('x')` (to the parent's value) and `variables('x')` to what they name. */
function resolve(value: ArmValue, scope: Scope): { value: ArmValue; scope: Scope } {
  const expr = expressionOf(value);
  if (expr?.kind !== "call" || expr.args[0]?.kind !== "string") return { value, scope };
  const name = expr.args[0].value;
  if (expr.name === "variables" && scope.template.variables?.[name] !== undefined) {
    return resolve(scope.template.variables[name], scope);
  }
  if (expr.name === "parameters" && scope.parent?.parameters[name] !== undefined) {
    return resolve(scope.parent.parameters[name].value, scope.parent.scope);
  }
  // A parameter of the top template: its default (what a deployment without the value gets).
  const fallback = scope.template.parameters?.[name]?.defaultValue;
  if (expr.name === "parameters" && scope.parent === undefined && fallback !== undefined)
    return resolve(fallback, scope);
  return { value, scope };
}

/** What an expression is evaluated with: parameter values, the copy loop's index, lambda variables. */
export interface ArmEnvironment {
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly copyIndex?: number;
  readonly lambdas?: Readonly<Record<string, unknown>>;
}

/**
 * Evaluates the few template functions Herald's filters are built with (`format`, `join`,
 * `map`/`lambda`, `toLower`, `parameters`, `copyIndex`, member and index access), as Resource
 * Manager would at deployment; anything else throws, so a test never guesses.
 */
export function evaluateArm(expr: ArmExpr, env: ArmEnvironment): unknown {
  const value = (e: ArmExpr) => evaluateArm(e, env);
  switch (expr.kind) {
    case "string":
    case "number":
      return expr.value;
    case "member": {
      const target = value(expr.target) as Record<string, unknown>;
      return target[expr.name];
    }
    case "index": {
      const target = value(expr.target) as Record<string | number, unknown>;
      return target[value(expr.index) as string | number];
    }
    case "call": {
      const args = expr.args;
      switch (expr.name) {
        case "parameters":
          return env.parameters[value(args[0]!) as string];
        case "copyIndex":
          return env.copyIndex ?? 0;
        case "lambdaVariables":
          return env.lambdas?.[value(args[0]!) as string];
        case "toLower":
          return String(value(args[0]!)).toLowerCase();
        case "replace":
          return String(value(args[0]!)).replaceAll(
            String(value(args[1]!)),
            String(value(args[2]!)),
          );
        case "join":
          return (value(args[0]!) as unknown[]).join(String(value(args[1]!)));
        case "format": {
          const [pattern, ...rest] = args.map(value);
          return String(pattern).replace(/\{(\d+)\}/g, (_m, n: string) => String(rest[Number(n)]));
        }
        case "map": {
          const items = value(args[0]!) as unknown[];
          const lambda = args[1]!;
          if (lambda.kind !== "call" || lambda.name !== "lambda")
            throw new Error("map() without a lambda");
          const name = value(lambda.args[0]!) as string;
          return items.map((item) =>
            evaluateArm(lambda.args[1]!, { ...env, lambdas: { ...env.lambdas, [name]: item } }),
          );
        }
        default:
          throw new Error(`evaluateArm: ${expr.name}() is not supported`);
      }
    }
  }
}

export interface Found<T> {
  readonly value: T;
  /** Only under one branch of an `if()` (or a ternary in Bicep). */
  readonly conditional: boolean;
  readonly scope: Scope;
}

/** Keys of an object value: JSON objects, `createObject`, `union` and both branches of `if`. */
export function objectKeys(value: ArmValue, scope: Scope, conditional = false): Found<string>[] {
  const target = resolve(value, scope);
  if (target.value !== null && typeof target.value === "object" && !Array.isArray(target.value)) {
    return Object.keys(target.value).map((k) => ({ value: k, conditional, scope: target.scope }));
  }
  const expr = expressionOf(target.value);
  if (expr === undefined) throw new Error(`not an object: ${JSON.stringify(target.value)}`);
  return keysOfExpr(expr, target.scope, conditional);
}

function keysOfExpr(expr: ArmExpr, scope: Scope, conditional: boolean): Found<string>[] {
  if (expr.kind !== "call") throw new Error(`cannot list keys of ${armText(expr)}`);
  switch (expr.name) {
    case "createObject":
      return expr.args
        .filter((_, i) => i % 2 === 0)
        .map((key) => {
          if (key.kind !== "string") throw new Error(`computed key ${armText(key)}`);
          return { value: key.value, conditional, scope };
        });
    case "union":
      return expr.args.flatMap((a) => keysOfExpr(a, scope, conditional));
    case "if":
      return expr.args.slice(1).flatMap((a) => keysOfExpr(a, scope, true));
    case "parameters":
    case "variables":
      return objectKeys(`[${armText(expr)}]`, scope, conditional);
    default:
      throw new Error(`cannot list keys of ${expr.name}()`);
  }
}

/** Items of an array value: JSON arrays, `createArray`, `concat` and both branches of `if`. */
export function arrayItems(value: ArmValue, scope: Scope, conditional = false): Found<unknown>[] {
  const target = resolve(value, scope);
  if (Array.isArray(target.value)) {
    return target.value.map((v: unknown) => ({ value: v, conditional, scope: target.scope }));
  }
  const expr = expressionOf(target.value);
  if (expr === undefined) throw new Error(`not an array: ${JSON.stringify(target.value)}`);
  return itemsOfExpr(expr, target.scope, conditional);
}

function itemsOfExpr(expr: ArmExpr, scope: Scope, conditional: boolean): Found<unknown>[] {
  if (expr.kind !== "call") throw new Error(`cannot list items of ${armText(expr)}`);
  switch (expr.name) {
    case "createArray":
      return expr.args.map((a) => ({ value: a, conditional, scope }));
    case "concat":
      return expr.args.flatMap((a) => itemsOfExpr(a, scope, conditional));
    case "if":
      return expr.args.slice(1).flatMap((a) => itemsOfExpr(a, scope, true));
    case "parameters":
    case "variables":
      return arrayItems(`[${armText(expr)}]`, scope, conditional);
    default:
      throw new Error(`cannot list items of ${expr.name}()`);
  }
}

/** Property of a `createObject(...)` expression or a JSON object, as text. */
export function propertyText(item: unknown, key: string): string | undefined {
  if (item !== null && typeof item === "object" && "kind" in item) {
    const expr = item as ArmExpr;
    if (expr.kind !== "call" || expr.name !== "createObject") return undefined;
    for (let i = 0; i + 1 < expr.args.length; i += 2) {
      const k = expr.args[i]!;
      if (k.kind === "string" && k.value === key) return armText(expr.args[i + 1]!);
    }
    return undefined;
  }
  if (item !== null && typeof item === "object") {
    const v = (item as Record<string, unknown>)[key];
    return typeof v === "string" ? v.replace(/^\[(.*)\]$/, "$1") : JSON.stringify(v);
  }
  return undefined;
}
