import { readdirSync } from "node:fs";
import { join } from "node:path";

import ts from "typescript";

import { type FencedBlock, fencedBlocks, PROJECT_ROOT } from "../support/markdown";

const DOCS = ["README.md", ...readdirSync(join(PROJECT_ROOT, "docs")).map((f) => `docs/${f}`)]
  .filter((file) => file.endsWith(".md"))
  .sort();

/** Where the snippets seem to live: `../simulator` in one resolves as it does in a test. */
const SNIPPET_DIR = join(PROJECT_ROOT, "test", "doc-snippets");

const isTypeScript = (block: FencedBlock) => ["ts", "typescript", "tsx"].includes(block.language);

/**
 * A snippet as a module: its imports stay on top, the rest becomes the body of an async function
 * (snippets use top-level await, which a CommonJS module may not), on the same lines, so a
 * diagnostic's line is the snippet's line.
 */
function asModule(block: FencedBlock): string {
  const source = ts.createSourceFile("snippet.ts", block.code, ts.ScriptTarget.Latest, true);
  let importsEnd = 0;
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement)) break;
    importsEnd = statement.end;
  }
  const head = block.code.slice(0, importsEnd);
  const body = block.code.slice(importsEnd);
  return `${head} export async function snippet(): Promise<void> {${body}\n}\n`;
}

function snippetPath(block: FencedBlock): string {
  return join(SNIPPET_DIR, `${block.file.replace(/[/.]/g, "-")}-${block.line}.ts`);
}

/**
 * Type-checks the snippets as a reader's app would compile them: the project's strict settings,
 * `"herald"` resolving to the package's public entry point (shared/index.ts, what `exports`
 * names once built). Returns one line per error, `file:line: message`.
 */
function typeCheck(blocks: readonly FencedBlock[]): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(PROJECT_ROOT, "tsconfig.json"),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    },
  );
  if (config === undefined) throw new Error("tsconfig.json could not be read");
  const options: ts.CompilerOptions = {
    ...config.options,
    noEmit: true,
    sourceMap: false,
    baseUrl: PROJECT_ROOT,
    paths: {
      herald: ["shared/index.ts"],
      "herald/notification-request.schema.json": [
        "shared/notifications/notification-request.schema.json",
      ],
    },
  };
  const files = new Map(
    blocks.map((block) => [snippetPath(block), { block, text: asModule(block) }]),
  );
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (name) => files.get(name)?.text ?? readFile(name);
  host.fileExists = (name) => files.has(name) || fileExists(name);
  host.getSourceFile = (name, language, ...rest) => {
    const snippet = files.get(name);
    return snippet !== undefined
      ? ts.createSourceFile(name, snippet.text, language)
      : getSourceFile(name, language, ...rest);
  };
  const program = ts.createProgram({ rootNames: [...files.keys()], options, host });
  const errors: string[] = [];
  for (const [name, { block }] of files) {
    const sourceFile = program.getSourceFile(name);
    const diagnostics = [
      ...program.getSyntacticDiagnostics(sourceFile),
      ...program.getSemanticDiagnostics(sourceFile),
    ];
    for (const diagnostic of diagnostics) {
      const line =
        diagnostic.file !== undefined && diagnostic.start !== undefined
          ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line
          : 0;
      const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
      errors.push(`${block.file}:${block.line + line}: TS${diagnostic.code} ${text}`);
    }
  }
  return errors;
}

describe("TypeScript snippets in README.md and docs/", () => {
  const snippets = DOCS.flatMap((file) => fencedBlocks(file)).filter(isTypeScript);

  it("finds the snippets a reader copies (README, the quick start, notifications, deployment)", () => {
    const files = new Set(snippets.map((s) => s.file));
    for (const file of [
      "README.md",
      "docs/lob-quickstart.md",
      "docs/notifications.md",
      "docs/deployment.md",
    ])
      expect(files).toContain(file);
  });

  it("compiles every one of them against the package's public exports", () => {
    expect(typeCheck(snippets)).toEqual([]);
  }, 120_000);

  it("reports a snippet that calls what it never imports, at its line in the doc", () => {
    const broken = fencedBlocks(
      "docs/example.md",
      [
        "# Example",
        "",
        "```ts",
        'import { NotificationClient } from "herald";',
        "",
        'const client = new NotificationClient({ localQueueDirectory: ".data/queue" });',
        "await client.send({ tenantId: 42 });",
        "requestMessageId(client);",
        "```",
      ].join("\n"),
    );
    const errors = typeCheck(broken);
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^docs\/example\.md:7: TS2322 .*number.*string/),
        expect.stringMatching(/^docs\/example\.md:8: TS2304 Cannot find name 'requestMessageId'/),
      ]),
    );
  }, 120_000);
});
