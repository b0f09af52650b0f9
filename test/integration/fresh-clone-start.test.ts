import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { stopAzurite } from "../../shared/local-host/azurite-client";
import { isAlive } from "../../shared/local-host/folder-lock";
import { AZURITE_FOLDER } from "../../shared/local-host/settings";
import { cloneWorkingTree, isRepository } from "../support/fresh-clone";
import { TEST_RUN_VARIABLE } from "../support/leftover-processes";

interface Run {
  readonly child: ChildProcess;
  readonly log: string;
  readonly exited: Promise<number | null>;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/**
 * `npm start` on a fresh clone, as a newcomer runs it: time to ready (printed, not asserted: the
 * machine may be loaded), `npm run build` in another terminal meanwhile (no 5xx; it used to delete
 * the running host's code), the herald CLI with no build step, the ways to stop it (SIGINT to npm,
 * Ctrl+C to the terminal's process group: exit 0 both), and nothing left running afterwards.
 */
(isRepository ? describe : describe.skip)("npm start on a fresh clone", () => {
  let clone = "";
  const runs: Run[] = [];
  /** Every process the clone's npm start ran: npm, its host, the folder's Azurite. */
  const pids = new Set<number>();

  // The node running jest comes first on PATH, so npm runs the same Node 22.
  const env: NodeJS.ProcessEnv = {
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`,
    HOME: process.env.HOME ?? tmpdir(),
    PORT: "0",
    // A safety net: if the test fails half-way, its Azurite stops soon after.
    HERALD_AZURITE_IDLE_MINUTES: "0.5",
    // The global teardown fails the run if anything this test starts outlives it.
    ...(process.env[TEST_RUN_VARIABLE] !== undefined
      ? { [TEST_RUN_VARIABLE]: process.env[TEST_RUN_VARIABLE] }
      : {}),
  };

  beforeAll(() => {
    clone = mkdtempSync(join(tmpdir(), "herald-clone-"));
    cloneWorkingTree(clone);
  });

  afterAll(async () => {
    for (const run of runs) if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await stopAzurite(join(clone, AZURITE_FOLDER), { force: true });
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, "SIGKILL");
    rmSync(clone, { recursive: true, force: true });
  });

  function run(args: string[], name: string): Run {
    const log = join(clone, `${name}.log`);
    const out = openSync(log, "w");
    // Its own process group, as a terminal gives a command: the test can send "Ctrl+C" to it.
    const child = spawn("npm", args, {
      cwd: clone,
      env,
      detached: true,
      stdio: ["ignore", out, out],
    });
    closeSync(out);
    if (child.pid !== undefined) pids.add(child.pid);
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
    const started: Run = { child, log, exited };
    runs.push(started);
    return started;
  }

  async function ready(start: Run): Promise<string> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const text = readFileSync(start.log, "utf8");
      const url = /messages +\[POST,HEAD\] (http:\/\/127\.0\.0\.1:\d+)\/api\/messages/.exec(text);
      if (url !== null && text.includes("Stop: Ctrl+C")) {
        for (const match of text.matchAll(/Azurite process (\d+)/g)) pids.add(Number(match[1]));
        return url[1]!;
      }
      if (start.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`npm start did not get ready:\n${text}`);
      }
      await sleep(50);
    }
  }

  function hostsOf(): number[] {
    const log = readFileSync(join(clone, AZURITE_FOLDER, "azurite.log"), "utf8");
    return [...log.matchAll(/npm start \(process (\d+)\) attached/g)].map((m) => Number(m[1]));
  }

  it("is ready in seconds, serves through a concurrent npm run build without a 5xx, and stops with exit 0 on SIGINT to npm or Ctrl+C", async () => {
    const began = performance.now();
    const first = run(["start"], "start-1");
    const origin = await ready(first);
    const readyAfter = (performance.now() - began) / 1000;
    const firstLog = readFileSync(first.log, "utf8");
    const built = /Built in ([\d.]+) s/.exec(firstLog)?.[1];
    process.stdout.write(
      `[fresh clone] npm start ready in ${readyAfter.toFixed(1)} s (esbuild ${built ?? "?"} s; load ${readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?"})\n`,
    );
    // It says what it does while it builds, and which Azurite it runs.
    expect(firstLog).toContain("Building the local host with esbuild into build/local");
    expect(firstLog).toMatch(/Azurite process \d+: started by this npm start/);

    // Another terminal: npm run build (tsc into dist/, deleting it first), while the LOB app and
    // Teams keep calling, and the CLI is used with no build of its own.
    const build = run(["run", "build"], "build");
    const answers: number[] = [];
    let cli: { code: number | null; out: string } | undefined;
    let n = 0;
    while (build.child.exitCode === null) {
      n += 1;
      const id = `fresh-clone-${n}`;
      const posted = await fetch(`${origin}/api/notifications`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          schemaVersion: 1,
          id,
          tenantId: "8f6a1c2e-4b7d-4e0a-9c3f-5d2b7e9a1c40",
          recipients: [{ userPrincipalName: "nobody@contoso.com" }],
          message: { text: "hello" },
        }),
      });
      answers.push(posted.status);
      const probe = await fetch(`${origin}/api/messages`, { method: "HEAD" });
      answers.push(probe.status);
      if (cli === undefined) {
        const status = spawn(
          process.execPath,
          ["shared/cli/bin/herald.js", "status", id, "--endpoint", origin, "--wait", "30"],
          { cwd: clone, env, stdio: ["ignore", "pipe", "pipe"] },
        );
        let out = "";
        status.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
        status.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
        const code = await new Promise<number | null>((done) => status.once("exit", done));
        cli = { code, out };
      }
      await sleep(20);
    }
    expect(await build.exited).toBe(0);
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.filter((status) => status >= 500)).toEqual([]);
    // The unknown user makes the request final and "not everyone reached": exit 5.
    expect(cli).toMatchObject({ code: 5 });
    expect(cli?.out).toContain("unreachable");

    // A process manager (or an IDE) sends SIGINT to npm's own process.
    process.kill(first.child.pid!, "SIGINT");
    expect(await first.exited).toBe(0);
    expect(readFileSync(first.log, "utf8")).toContain("Stopped.");

    // Ctrl+C in a terminal: SIGINT to the whole foreground group (npm and the host; npm passes
    // its copy on too). The Azurite the first start left running is reused.
    const second = run(["start"], "start-2");
    await ready(second);
    const secondLog = readFileSync(second.log, "utf8");
    expect(secondLog).toMatch(/Azurite process \d+: reused/);
    expect(secondLog).toContain("is up to date with the sources");
    process.kill(-second.child.pid!, "SIGINT");
    expect(await second.exited).toBe(0);
    const stopped = readFileSync(second.log, "utf8");
    expect(stopped.match(/SIGINT: stopping/g)).toHaveLength(1);
    expect(stopped).not.toContain("again: exiting without waiting");

    for (const pid of hostsOf()) pids.add(pid);
    const stop = run(["run", "azurite:stop"], "azurite-stop");
    expect(await stop.exited).toBe(0);
    expect(readFileSync(stop.log, "utf8")).toMatch(/Azurite process \d+ saved the tables/);
    expect([...pids].filter((pid) => isAlive(pid))).toEqual([]);
  }, 300_000);
});
