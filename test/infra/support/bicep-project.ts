import path from "node:path";

import type { Node } from "web-tree-sitter";

import {
  BicepDocument,
  type Declaration,
  descendants,
  INFRA_DIR,
  property,
  propertyKey,
  stringLiteral,
} from "./bicep";

/** An expression and the file it is written in. */
export interface Expr {
  doc: BicepDocument;
  node: Node;
}

/** One key of an object that ends up in an app-settings (or similar) object. */
export interface Entry {
  name: string;
  value: Expr;
  /** True when the key is only present on one branch of a `?:`. */
  conditional: boolean;
  where: string;
}

/** A problem the Bicep compiler or linter would report, found by reading the parse trees. */
export interface Finding {
  where: string;
  message: string;
}

interface ModuleLink {
  declaration: Declaration;
  caller: BicepDocument;
  doc: BicepDocument;
}

/**
 * `infra/main.bicep` and the modules it calls, with just enough evaluation to follow a value
 * through variables, `union()`, `concat()`, `?:` and module parameters. It never guesses: what it
 * cannot follow is returned as the expression it stopped at.
 */
export class BicepProject {
  private constructor(
    readonly main: BicepDocument,
    private readonly links: ModuleLink[],
  ) {}

  static async load(mainFile = path.join(INFRA_DIR, "main.bicep")): Promise<BicepProject> {
    const main = await BicepDocument.load(mainFile);
    return BicepProject.fromDocuments(main, async (file) => BicepDocument.load(file));
  }

  static async fromDocuments(
    main: BicepDocument,
    open: (file: string) => Promise<BicepDocument>,
  ): Promise<BicepProject> {
    const links: ModuleLink[] = [];
    for (const declaration of main.all("module")) {
      const target = path.resolve(path.dirname(main.file), main.targetOf(declaration));
      links.push({ declaration, caller: main, doc: await open(target) });
    }
    return new BicepProject(main, links);
  }

  get documents(): BicepDocument[] {
    return [this.main, ...new Set(this.links.map((l) => l.doc))];
  }

  module(symbol: string): BicepDocument {
    const link = this.links.find((l) => l.declaration.name === symbol);
    if (link === undefined) throw new Error(`main.bicep: no module named ${symbol}`);
    return link.doc;
  }

  /** Module symbol in main.bicep that calls `modules/<file>`. */
  symbolFor(file: string): string {
    const link = this.links.find((l) => path.basename(l.doc.file) === file);
    if (link === undefined) throw new Error(`main.bicep calls no module ${file}`);
    return link.declaration.name;
  }

  /** Module symbol in main.bicep that calls this document. */
  moduleSymbolOf(doc: BicepDocument): string | undefined {
    return this.links.find((l) => l.doc === doc)?.declaration.name;
  }

  /** The `params: {...}` object of a module call. */
  moduleParams(symbol: string): Expr {
    const link = this.links.find((l) => l.declaration.name === symbol);
    if (link === undefined) throw new Error(`main.bicep: no module named ${symbol}`);
    const body = link.caller.bodyOf(link.declaration);
    const params = body === undefined ? undefined : property(body, "params");
    if (params === undefined)
      throw new Error(`${link.caller.where(link.declaration.node)}: no params`);
    return { doc: link.caller, node: params };
  }

  /** Follows identifiers (var value, module argument, param default) and parentheses. */
  resolve(expr: Expr, seen = new Set<Node>()): Expr {
    const { doc, node } = expr;
    if (seen.has(node)) return expr;
    seen.add(node);
    if (node.type === "parenthesized_expression" || node.type === "expression") {
      const inner = node.namedChildren[0];
      return inner === undefined ? expr : this.resolve({ doc, node: inner }, seen);
    }
    if (node.type !== "identifier") return expr;
    const variable = doc.find("var", node.text);
    if (variable !== undefined) {
      const value = doc.valueOf(variable);
      return value === undefined ? expr : this.resolve({ doc, node: value }, seen);
    }
    const param = doc.find("param", node.text);
    if (param !== undefined) {
      const argument = this.argumentFor(doc, node.text);
      if (argument !== undefined) return this.resolve(argument, seen);
      const fallback = doc.valueOf(param);
      return fallback === undefined ? expr : this.resolve({ doc, node: fallback }, seen);
    }
    return expr;
  }

  /** The expression main.bicep passes for a module's parameter, if it passes one. */
  argumentFor(doc: BicepDocument, paramName: string): Expr | undefined {
    const symbol = this.moduleSymbolOf(doc);
    if (symbol === undefined) return undefined;
    const params = this.moduleParams(symbol);
    const value = property(params.node, paramName);
    return value === undefined ? undefined : { doc: params.doc, node: value };
  }

  /**
   * Keys of an object expression: object literals, `union(...)`, both branches of `?:` (marked
   * conditional) and anything those reach through variables and module parameters.
   */
  entries(expr: Expr, conditional = false): Entry[] {
    const { doc, node } = this.resolve(expr);
    switch (node.type) {
      case "object":
        return node.namedChildren
          .filter((p) => p.type === "object_property")
          .flatMap((p) => {
            const name = propertyKey(p);
            const value = p.namedChildren[1];
            if (name === undefined || value === undefined) return [];
            return [{ name, value: { doc, node: value }, conditional, where: doc.where(p) }];
          });
      case "call_expression": {
        const callee = node.namedChildren[0]?.text;
        if (callee !== "union")
          throw new Error(`${doc.where(node)}: cannot list keys of ${callee}()`);
        return callArguments(node).flatMap((a) => this.entries({ doc, node: a }, conditional));
      }
      case "ternary_expression": {
        const [, whenTrue, whenFalse] = node.namedChildren;
        return [whenTrue, whenFalse].flatMap((branch) =>
          branch === undefined ? [] : this.entries({ doc, node: branch }, true),
        );
      }
      default:
        throw new Error(`${doc.where(node)}: cannot list keys of a ${node.type}`);
    }
  }

  /** Items of an array expression: literals, `concat(...)` and both branches of `?:`. */
  items(expr: Expr, conditional = false): { item: Expr; conditional: boolean }[] {
    const { doc, node } = this.resolve(expr);
    switch (node.type) {
      case "array":
        return node.namedChildren
          .filter((n) => n.type !== "comment")
          .map((n) => ({ item: { doc, node: n }, conditional }));
      case "call_expression": {
        const callee = node.namedChildren[0]?.text;
        if (callee !== "concat")
          throw new Error(`${doc.where(node)}: cannot list items of ${callee}()`);
        return callArguments(node).flatMap((a) => this.items({ doc, node: a }, conditional));
      }
      case "ternary_expression": {
        const [, whenTrue, whenFalse] = node.namedChildren;
        return [whenTrue, whenFalse].flatMap((branch) =>
          branch === undefined ? [] : this.items({ doc, node: branch }, true),
        );
      }
      default:
        throw new Error(`${doc.where(node)}: cannot list items of a ${node.type}`);
    }
  }

  /** A literal value, following identifiers and `object.key` on object variables. */
  literal(expr: Expr): string | number | boolean | undefined {
    const { doc, node } = this.resolve(expr);
    switch (node.type) {
      case "string":
        return stringLiteral(node);
      case "number":
        return Number(node.text);
      case "boolean":
        return node.text === "true";
      case "member_expression": {
        const [object, key] = node.namedChildren;
        if (object === undefined || key === undefined) return undefined;
        const target = this.resolve({ doc, node: object });
        if (target.node.type !== "object") return undefined;
        const value = property(target.node, key.text);
        return value === undefined ? undefined : this.literal({ doc: target.doc, node: value });
      }
      default:
        return undefined;
    }
  }

  /** What the Bicep compiler and linter would reject, as far as parse trees can tell. */
  async findings(): Promise<Finding[]> {
    return [...(await this.moduleWiringFindings()), ...this.documents.flatMap(documentFindings)];
  }

  /**
   * Objects passed for a parameter typed with a user-defined object type (`roleAssignmentType[]`)
   * may only use the type's properties and must give its required ones, as the compiler checks.
   */
  private async typedArgumentFindings(): Promise<Finding[]> {
    const findings: Finding[] = [];
    for (const link of this.links) {
      for (const param of link.doc.all("param")) {
        const typeText = param.node.namedChildren[1]?.text ?? "";
        const match = /^([A-Za-z_][A-Za-z0-9_]*)(\[\])?$/.exec(typeText);
        if (match?.[1] === undefined) continue;
        const shape = await this.objectType(link.doc, match[1]);
        const argument = this.argumentFor(link.doc, param.name);
        if (shape === undefined || argument === undefined) continue;
        let values: Expr[];
        try {
          values = match[2] ? this.items(argument).map((i) => i.item) : [argument];
        } catch {
          continue; // not a literal list: the compiler checks it, we cannot
        }
        for (const value of values) {
          let keys: Entry[];
          try {
            keys = this.entries(value);
          } catch {
            continue;
          }
          const given = new Set(keys.map((k) => k.name));
          for (const key of keys) {
            if (!shape.has(key.name)) {
              findings.push({
                where: key.where,
                message: `'${key.name}' is not a property of ${match[1]} (${link.doc.relativePath} param ${param.name})`,
              });
            }
          }
          for (const [name, required] of shape) {
            if (required && !given.has(name)) {
              findings.push({
                where: value.doc.where(value.node),
                message: `${match[1]} needs '${name}' (${link.doc.relativePath} param ${param.name})`,
              });
            }
          }
        }
      }
    }
    return findings;
  }

  /** Properties (name -> required) of a user-defined object type, local or imported. */
  private async objectType(
    doc: BicepDocument,
    typeName: string,
  ): Promise<Map<string, boolean> | undefined> {
    let owner: BicepDocument | undefined = doc.find("type", typeName) ? doc : undefined;
    const imported = doc.find("import", typeName);
    if (owner === undefined && imported !== undefined) {
      const from = imported.node.namedChildren.find((c) => c.type === "string");
      const file = from === undefined ? undefined : stringLiteral(from);
      if (file !== undefined)
        owner = await BicepDocument.load(path.resolve(path.dirname(doc.file), file));
    }
    const declaration = owner?.find("type", typeName);
    const body = declaration?.node.namedChildren[1];
    if (body?.type !== "object") return undefined;
    const shape = new Map<string, boolean>();
    for (const p of body.namedChildren) {
      if (p.type !== "object_property") continue;
      const name = propertyKey(p);
      if (name !== undefined) shape.set(name, p.namedChildren[1]?.type !== "nullable_type");
    }
    return shape;
  }

  private async moduleWiringFindings(): Promise<Finding[]> {
    const findings: Finding[] = [];
    for (const link of this.links) {
      const { caller, declaration, doc } = link;
      const params = this.moduleParams(declaration.name);
      const passed = new Map<string, Node>();
      for (const p of params.node.namedChildren) {
        const name = p.type === "object_property" ? propertyKey(p) : undefined;
        if (name !== undefined) passed.set(name, p);
      }
      for (const [name, node] of passed) {
        if (doc.find("param", name) === undefined) {
          findings.push({
            where: caller.where(node),
            message: `module ${declaration.name} passes '${name}', which ${doc.relativePath} does not declare`,
          });
        }
      }
      for (const param of doc.all("param")) {
        if (!passed.has(param.name) && isRequired(doc, param)) {
          findings.push({
            where: caller.where(declaration.node),
            message: `module ${declaration.name} does not pass required parameter '${param.name}' of ${doc.relativePath}`,
          });
        }
      }
    }
    findings.push(...(await this.typedArgumentFindings()));
    // `<module>.outputs.<name>` must name an output the module declares.
    for (const node of descendants(this.main.root)) {
      if (node.type !== "member_expression") continue;
      const [object, outputName] = node.namedChildren;
      if (object?.type !== "member_expression" || outputName === undefined) continue;
      const [symbol, outputs] = object.namedChildren;
      if (outputs?.text !== "outputs" || symbol?.type !== "identifier") continue;
      const link = this.links.find((l) => l.declaration.name === symbol.text);
      if (link !== undefined && link.doc.find("output", outputName.text) === undefined) {
        findings.push({
          where: this.main.where(node),
          message: `${symbol.text}.outputs.${outputName.text}: ${link.doc.relativePath} has no such output`,
        });
      }
    }
    return findings;
  }
}

function callArguments(call: Node): Node[] {
  return call.namedChildren.find((c) => c.type === "arguments")?.namedChildren ?? [];
}

/** A param with neither a default nor a nullable (`type?`) type. */
export function isRequired(doc: BicepDocument, param: Declaration): boolean {
  if (doc.valueOf(param) !== undefined) return false;
  const type = param.node.namedChildren[1];
  return !(type !== undefined && (type.type === "nullable_type" || type.text.endsWith("?")));
}

/** Names Bicep provides without a declaration. */
const NAMESPACES = new Set(["az", "sys"]);

/** Identifier positions that are names, not references to a symbol. */
function isReference(node: Node): boolean {
  const parent = node.parent;
  if (parent === null || parent.type === "import_functionality") return false;
  const isFirst = parent.namedChildren[0]?.id === node.id;
  const namingParent =
    parent.type === "object_property" ||
    parent.type === "call_expression" ||
    parent.type === "metadata_declaration" ||
    parent.type in DECLARATION_NODE_TYPES;
  return !(isFirst && namingParent);
}

const DECLARATION_NODE_TYPES: Record<string, true> = {
  parameter_declaration: true,
  variable_declaration: true,
  resource_declaration: true,
  module_declaration: true,
  output_declaration: true,
  type_declaration: true,
};

/** Loop variables and lambda parameters: names introduced inside expressions. */
function localNames(doc: BicepDocument): Set<string> {
  const names = new Set<string>();
  for (const node of descendants(doc.root)) {
    if (node.type === "for_statement") {
      const first = node.namedChildren[0];
      if (first?.type === "identifier") names.add(first.text);
      // `for (item, index) in ...`: loop_variable and loop_enumerator nodes.
      else if (first !== undefined) for (const id of first.namedChildren) names.add(id.text);
    } else if (node.type === "lambda_expression") {
      for (const child of node.namedChildren.slice(0, -1)) {
        if (child.type === "identifier") names.add(child.text);
        for (const id of child.namedChildren) if (id.type === "identifier") names.add(id.text);
      }
    }
  }
  return names;
}

const DESCRIPTION = /^(Required|Optional|Conditional)\. \S/;
const SECRET_NAME = /(password|secret|connectionstring)/i;

function documentFindings(doc: BicepDocument): Finding[] {
  const findings: Finding[] = [];
  const declared = new Set(doc.declarations.map((d) => d.name));
  const locals = localNames(doc);
  const references = new Map<string, number>();

  for (const node of descendants(doc.root)) {
    if (node.type !== "identifier" || !isReference(node)) continue;
    references.set(node.text, (references.get(node.text) ?? 0) + 1);
    if (!declared.has(node.text) && !locals.has(node.text) && !NAMESPACES.has(node.text)) {
      findings.push({ where: doc.where(node), message: `'${node.text}' is not declared` });
    }
  }

  for (const d of doc.declarations) {
    const used = (references.get(d.name) ?? 0) > 0;
    if ((d.kind === "param" || d.kind === "var" || d.kind === "import") && !used) {
      findings.push({ where: doc.where(d.node), message: `${d.kind} '${d.name}' is never used` });
    }
    if (d.kind === "param") findings.push(...paramFindings(doc, d));
    if (d.kind === "output" && !d.decorators.has("description")) {
      findings.push({
        where: doc.where(d.node),
        message: `output '${d.name}' has no @description`,
      });
    }
    if (d.kind === "resource") {
      const type = doc.targetOf(d);
      if (!/^[A-Za-z]+\.[A-Za-z]+\/[A-Za-z/]+@\d{4}-\d{2}-\d{2}(-preview)?$/.test(type)) {
        findings.push({
          where: doc.where(d.node),
          message: `resource type '${type}' is not <type>@<api-version>`,
        });
      }
    }
  }
  return findings;
}

function paramFindings(doc: BicepDocument, d: Declaration): Finding[] {
  const findings: Finding[] = [];
  const where = doc.where(d.node);
  const description = d.decorators.get("description")?.[0];
  const text = description === undefined ? undefined : stringLiteral(description);
  if (text === undefined) {
    findings.push({ where, message: `param '${d.name}' has no @description` });
  } else if (!DESCRIPTION.test(text)) {
    findings.push({
      where,
      message: `param '${d.name}': description must start with Required./Optional./Conditional.`,
    });
  } else {
    const required = isRequired(doc, d);
    if (required !== text.startsWith("Required.")) {
      findings.push({
        where,
        message: `param '${d.name}' is ${required ? "required (no default)" : "optional (has a default)"} but its description says '${text.split(" ")[0]}'`,
      });
    }
  }
  if (SECRET_NAME.test(d.name) && !d.decorators.has("secure")) {
    findings.push({ where, message: `param '${d.name}' looks secret but is not @secure()` });
  }
  const fallback = doc.valueOf(d);
  if (d.decorators.has("secure") && fallback !== undefined && stringLiteral(fallback) !== "") {
    findings.push({ where, message: `@secure() param '${d.name}' has a non-empty default` });
  }
  const allowed = d.decorators.get("allowed")?.[0];
  if (allowed !== undefined && fallback !== undefined && allowed.type === "array") {
    const options = allowed.namedChildren.map((n) => n.text);
    if (!options.includes(fallback.text)) {
      findings.push({
        where,
        message: `param '${d.name}' defaults to ${fallback.text}, not one of @allowed`,
      });
    }
  }
  return findings;
}
