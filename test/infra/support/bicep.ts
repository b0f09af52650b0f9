import { readFileSync } from "node:fs";
import path from "node:path";

import { Language, type Node, Parser, type Tree } from "web-tree-sitter";

/**
 * Bicep files read with the real Bicep grammar (tree-sitter-bicep), since no Bicep compiler
 * runs here. Besides syntax errors, this gives the tests a parse tree to read settings, role
 * assignments and module wiring from, instead of matching text with regular expressions.
 */

export const REPO_ROOT = path.resolve(__dirname, "../../..");
export const INFRA_DIR = path.join(REPO_ROOT, "infra");

let parserPromise: Promise<Parser> | undefined;

/** One parser for the whole test file; loading the two WASM modules takes ~100 ms. */
export function bicepParser(): Promise<Parser> {
  parserPromise ??= (async () => {
    // Bytes, not paths: web-tree-sitter reads paths with a dynamic import(), which jest's
    // CommonJS sandbox refuses.
    const runtimeWasm = require.resolve("web-tree-sitter/web-tree-sitter.wasm");
    await Parser.init({ locateFile: () => runtimeWasm, wasmBinary: readFileSync(runtimeWasm) });
    const grammar = await Language.load(
      readFileSync(require.resolve("tree-sitter-bicep/tree-sitter-bicep.wasm")),
    );
    const parser = new Parser();
    parser.setLanguage(grammar);
    return parser;
  })();
  return parserPromise;
}

export interface SyntaxProblem {
  file: string;
  /** 1-based, as an editor shows it. */
  line: number;
  column: number;
  kind: "ERROR" | "MISSING";
  /** The offending source line, to make the failure readable. */
  sourceLine: string;
}

export interface Declaration {
  kind: "param" | "var" | "resource" | "module" | "output" | "type" | "import";
  name: string;
  node: Node;
  /** Decorator name -> its arguments (`@description('x')` -> [string node]). */
  decorators: Map<string, Node[]>;
}

const DECLARATION_KINDS: Record<string, Declaration["kind"]> = {
  parameter_declaration: "param",
  variable_declaration: "var",
  resource_declaration: "resource",
  module_declaration: "module",
  output_declaration: "output",
  type_declaration: "type",
};

/**
 * A `.bicepparam` file is `using '<file>'` plus `param name = value` lines. The grammar in
 * tree-sitter-bicep 1.1 only knows `param name type [= value]`, so each top-level
 * `param name =` is read as `var name =` (same length, so lines and columns stay true);
 * everything else, the expressions included, is parsed as written.
 */
export function bicepParamAsBicep(source: string): string {
  return source.replace(/^(\s*)param(\s+[A-Za-z_][A-Za-z0-9_]*\s*=)/gm, "$1var  $2");
}

export class BicepDocument {
  readonly root: Node;
  readonly declarations: Declaration[];

  private constructor(
    readonly file: string,
    readonly source: string,
    readonly tree: Tree,
  ) {
    this.root = tree.rootNode;
    this.declarations = collectDeclarations(this.root);
  }

  static async load(file: string, source = readFileSync(file, "utf8")): Promise<BicepDocument> {
    const parser = await bicepParser();
    const text = file.endsWith(".bicepparam") ? bicepParamAsBicep(source) : source;
    const tree = parser.parse(text);
    if (tree === null) throw new Error(`tree-sitter returned no tree for ${file}`);
    return new BicepDocument(file, source, tree);
  }

  get relativePath(): string {
    return path.relative(REPO_ROOT, this.file);
  }

  lineOf(node: Node): number {
    return node.startPosition.row + 1;
  }

  where(node: Node): string {
    return `${this.relativePath}:${this.lineOf(node)}`;
  }

  syntaxProblems(): SyntaxProblem[] {
    const lines = this.source.split("\n");
    const problems: SyntaxProblem[] = [];
    const visit = (node: Node): void => {
      if (node.isError || node.isMissing) {
        const { row, column } = node.startPosition;
        problems.push({
          file: this.relativePath,
          line: row + 1,
          column: column + 1,
          kind: node.isMissing ? "MISSING" : "ERROR",
          sourceLine: lines[row] ?? "",
        });
      }
      if (node.hasError || node.isMissing) for (const child of node.children) visit(child);
    };
    visit(this.root);
    return problems;
  }

  all(kind: Declaration["kind"]): Declaration[] {
    return this.declarations.filter((d) => d.kind === kind);
  }

  find(kind: Declaration["kind"], name: string): Declaration | undefined {
    return this.declarations.find((d) => d.kind === kind && d.name === name);
  }

  get(kind: Declaration["kind"], name: string): Declaration {
    const found = this.find(kind, name);
    if (found === undefined) throw new Error(`${this.relativePath}: no ${kind} named ${name}`);
    return found;
  }

  /** The value after `=` of a param (its default), var or output; undefined for a param without one. */
  valueOf(declaration: Declaration): Node | undefined {
    const named = declaration.node.namedChildren;
    switch (declaration.kind) {
      case "param":
        return named.length >= 3 ? named[named.length - 1] : undefined;
      case "var":
      case "output":
        return named[named.length - 1];
      default:
        return undefined;
    }
  }

  /** The body object of a resource or module (inside `if (...)` or `[for ...: ...]` too). */
  bodyOf(declaration: Declaration): Node | undefined {
    const last = declaration.node.namedChildren.at(-1);
    return last === undefined ? undefined : bodyObject(last);
  }

  /** Type string of a resource (`Microsoft.Storage/storageAccounts@2023-05-01`) or path of a module. */
  targetOf(declaration: Declaration): string {
    const target = declaration.node.namedChildren.find((c) => c.type === "string");
    return target === undefined ? "" : (stringLiteral(target) ?? "");
  }
}

function collectDeclarations(root: Node): Declaration[] {
  const declarations: Declaration[] = [];
  let pending = new Map<string, Node[]>();
  for (const node of root.namedChildren) {
    if (node.type === "decorators") {
      pending = decoratorsOf(node);
      continue;
    }
    const kind =
      DECLARATION_KINDS[node.type] ??
      (node.type === "import_functionality" ? ("import" as const) : undefined);
    if (kind !== undefined) {
      for (const name of declarationNames(node, kind)) {
        declarations.push({ kind, name, node, decorators: pending });
      }
    }
    pending = new Map();
  }
  return declarations;
}

function declarationNames(node: Node, kind: Declaration["kind"]): string[] {
  if (kind === "import") {
    return node.namedChildren.filter((c) => c.type === "identifier").map((c) => c.text);
  }
  const first = node.namedChildren[0];
  return first?.type === "identifier" ? [first.text] : [];
}

export function decoratorsOf(decorators: Node): Map<string, Node[]> {
  const map = new Map<string, Node[]>();
  for (const decorator of decorators.namedChildren) {
    const call = decorator.namedChildren[0];
    if (call?.type !== "call_expression") continue;
    const callee = call.namedChildren[0];
    const name = callee?.text.replace(/^sys\./, "") ?? "";
    const args = call.namedChildren.find((c) => c.type === "arguments");
    map.set(name, args?.namedChildren ?? []);
  }
  return map;
}

function bodyObject(node: Node): Node | undefined {
  if (node.type === "object") return node;
  if (node.type === "if_statement" || node.type === "for_statement") {
    const last = node.namedChildren.at(-1);
    return last === undefined ? undefined : bodyObject(last);
  }
  return undefined;
}

/** Text of a string without interpolation (escapes resolved); undefined otherwise. */
export function stringLiteral(node: Node): string | undefined {
  if (node.type !== "string") return undefined;
  let text = "";
  for (const part of node.namedChildren) {
    if (part.type === "string_content") text += part.text;
    else if (part.type === "escape_sequence") text += unescape(part.text);
    else return undefined;
  }
  return text;
}

function unescape(sequence: string): string {
  const map: Record<string, string> = { "\\'": "'", "\\\\": "\\", "\\n": "\n", "\\t": "\t" };
  return map[sequence] ?? sequence.slice(1);
}

/** Key of an object property: an identifier or a quoted string. */
export function propertyKey(property: Node): string | undefined {
  const key = property.namedChildren[0];
  if (key === undefined) return undefined;
  if (key.type === "identifier") return key.text;
  return stringLiteral(key);
}

/** Value node of `key` in an object literal. */
export function property(object: Node, key: string): Node | undefined {
  for (const p of object.namedChildren) {
    if (p.type === "object_property" && propertyKey(p) === key) return p.namedChildren[1];
  }
  return undefined;
}

/** Every descendant (depth first) of a node. */
export function* descendants(node: Node): Generator<Node> {
  for (const child of node.namedChildren) {
    yield child;
    yield* descendants(child);
  }
}
