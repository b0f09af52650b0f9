import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { stopAzurite } from "../../shared/local-host/azurite-client";
import { AZURITE_FOLDER } from "../../shared/local-host/settings";
import {
  cloneWorkingTree,
  isRepository,
  newcomerEnv,
  runInTerminal,
  type TerminalRun,
  waitForOutput,
} from "../support/fresh-clone";
import { type FencedBlock, fencedBlocks } from "../support/markdown";

/** The walkthroughs a newcomer follows, each a section of shell blocks run top to bottom. */
const WALKTHROUGHS = [
  { file: "README.md", section: "Run it locally" },
  { file: "docs/lob-quickstart.md", section: "Try it locally in a few minutes" },
] as const;

/**
 * Commands of the walkthroughs this test does not run, and why. Everything else runs as written.
 */
const NOT_RUN: readonly { readonly command: RegExp; readonly why: string }[] = [
  {
    command: /^npm ci$/,
    why: "the clone links this checkout's node_modules; no test reaches the registry",
  },
  { command: /^npm test$/, why: "this test is part of that run" },
];

/**
 * Commands that keep running in their terminal, with the line that says they are ready: the
 * walkthrough's next block waits for it, as a reader waits for the banner.
 */
const SERVICES: readonly { readonly command: RegExp; readonly ready: RegExp }[] = [
  { command: /^npm start$/, ready: /Stop: Ctrl\+C\./ },
  { command: /^npm run playground$/, ready: /Herald welcomed [^:]+: notifications to/ },
];

type Step =
  | { readonly kind: "service"; readonly line: string; readonly ready: RegExp }
  | { readonly kind: "script"; readonly code: string; readonly at: string };

/** A command without its trailing comment (for matching only: it runs with the comment). */
function commandOf(line: string): string {
  return line.replace(/\s+#.*$/, "").trim();
}

/** The steps of one block: its services, then the rest of it as one bash script. */
function stepsOf(block: FencedBlock): Step[] {
  const steps: Step[] = [];
  const script: string[] = [];
  // A command continued with a trailing backslash is one line.
  const lines = block.code.split(/(?<!\\)\n/);
  for (const line of lines) {
    const command = commandOf(line);
    const service = SERVICES.find((s) => s.command.test(command));
    if (NOT_RUN.some((n) => n.command.test(command))) continue;
    if (service !== undefined) steps.push({ kind: "service", line, ready: service.ready });
    else script.push(line);
  }
  if (script.some((line) => commandOf(line) !== ""))
    steps.push({ kind: "script", code: script.join("\n"), at: `${block.file}:${block.line}` });
  return steps;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

function runScript(
  code: string,
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn("bash", ["-e", "-c", code], {
      ...options,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (exitCode) => done({ code: exitCode, output }));
  });
}

/**
 * The README's local walkthrough and the quick start's, run as a newcomer runs them on a fresh
 * clone: each shell block of the section in order, services (npm start, the playground) in
 * terminals of their own, waited for until they say they are ready, every other command as
 * written with bash. Only the environment differs from a reader's: free ports in PORT and
 * PLAYGROUND_PORT (both documented), as this machine runs other hosts on 7071.
 */
(isRepository ? describe : describe.skip)("the local walkthroughs, run as written", () => {
  const clones: string[] = [];
  const terminals: TerminalRun[] = [];

  afterAll(async () => {
    for (const terminal of terminals)
      if (terminal.child.exitCode === null && terminal.child.pid !== undefined)
        process.kill(-terminal.child.pid, "SIGKILL");
    for (const clone of clones) {
      await stopAzurite(join(clone, AZURITE_FOLDER), { force: true }).catch(() => undefined);
      rmSync(clone, { recursive: true, force: true });
    }
  });

  it.each(WALKTHROUGHS)(
    "$file, section '$section': the first notification reaches the Playground's user, herald status exits 0 and Ctrl+C stops each terminal with 0 (all but npm ci and npm test run as written)",
    async ({ file, section }) => {
      const blocks = fencedBlocks(file).filter(
        (b) => b.section === section && ["sh", "bash", "shell"].includes(b.language),
      );
      const steps = blocks.flatMap((block) => stepsOf(block));
      // What the walkthrough is about is in it (a renamed section would otherwise pass empty).
      expect(steps.filter((s) => s.kind === "service").map((s) => commandOf(s.line))).toEqual([
        "npm start",
        "npm run playground",
      ]);
      const scripts = steps.flatMap((s) => (s.kind === "script" ? [s.code] : []));
      expect(scripts.join("\n")).toMatch(/herald notify[\s\S]*herald status/);

      const clone = mkdtempSync(join(tmpdir(), "herald-walkthrough-"));
      clones.push(clone);
      cloneWorkingTree(clone);
      const env = newcomerEnv({
        PORT: String(await freePort()),
        PLAYGROUND_PORT: String(await freePort()),
        // A safety net: if the test fails half-way, its Azurite stops soon after.
        HERALD_AZURITE_IDLE_MINUTES: "0.5",
      });

      const services: TerminalRun[] = [];
      const outputs: string[] = [];
      for (const step of steps) {
        if (step.kind === "service") {
          const terminal = runInTerminal("bash", ["-c", step.line], {
            cwd: clone,
            env,
            log: join(clone, `terminal-${services.length + 1}.log`),
          });
          terminals.push(terminal);
          services.push(terminal);
          await waitForOutput(
            terminal,
            (text) => (step.ready.test(text) ? true : undefined),
            180_000,
          );
          continue;
        }
        const result = await runScript(step.code, { cwd: clone, env });
        outputs.push(result.output);
        if (result.code !== 0)
          throw new Error(
            `${step.at} exited with ${result.code}:\n${step.code}\n--- output\n${result.output}\n--- terminals\n${services.map((s) => s.output()).join("\n---\n")}`,
          );
      }
      expect(outputs.join("\n")).toMatch(/\bsent +alexw@contoso\.com/);

      // Ctrl+C in each terminal, the last one started first: both stop with exit 0.
      for (const terminal of [...services].reverse()) {
        process.kill(-terminal.child.pid!, "SIGINT");
        expect(await terminal.exited).toBe(0);
      }
      await stopAzurite(join(clone, AZURITE_FOLDER), { force: true });
    },
    300_000,
  );
});
