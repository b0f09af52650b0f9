import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

import { LocalQueue } from "../../shared/queue/local-queue";
import { bundleEntry } from "../support/bundle";
import { startNotificationsApiServer } from "../support/notifications-api-server";

const PROJECT_ROOT = resolve(__dirname, "../..");
const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/**
 * The CLI as a real process: `shared/cli/main.ts` bundled (what `npm run build` compiles and
 * the `herald` bin shim loads), run with plain node, so exit codes are the process's own.
 */
describe("herald as a process", () => {
  let root: string;
  let script: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "herald-cli-process-"));
    script = bundleEntry(join(PROJECT_ROOT, "shared", "cli", "main.ts"), join(root, "herald.js"));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  function herald(args: string[]) {
    const result = spawnSync(process.execPath, [script, ...args], {
      cwd: root,
      // Resolve the project's node_modules from the temp folder; no transport settings leak in.
      env: { PATH: process.env.PATH, NODE_PATH: join(PROJECT_ROOT, "node_modules") },
      encoding: "utf8",
      timeout: 20_000,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  it("exits 0 for --help, 2 for an invalid request, 0 for one sent to the queue", () => {
    const help = herald(["notify", "--help"]);
    const invalid = herald([
      "notify",
      "--tenant",
      "contoso",
      "--to",
      "a@contoso.com",
      "--text",
      "x",
    ]);
    const sent = herald(["notify", "--tenant", TENANT, "--to", "a@contoso.com", "--text", "x"]);

    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: herald notify [options]");
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain("tenantId (--tenant): must be a GUID");
    expect(sent.code).toBe(0);
    expect(sent.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
    expect(sent.stderr).toContain("not accepted by Herald yet");
  });

  it("ends quietly with exit 0 when its reader closed the pipe (herald … | head -1)", async () => {
    const child = spawn(process.execPath, [script, "notify", "--help"], {
      cwd: root,
      env: { PATH: process.env.PATH, NODE_PATH: join(PROJECT_ROOT, "node_modules") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Closed before the CLI has loaded: its first write meets a closed pipe (EPIPE).
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.on("close", done));

    expect(stderr).not.toContain("EPIPE");
    expect(code).toBe(0);
  });

  it("leaves the queued request in the local broker npm start drains", () => {
    const sent = herald([
      "notify",
      "--tenant",
      TENANT,
      "--to",
      "b@contoso.com",
      "--text",
      "y",
      "--id",
      "proc-1",
    ]);

    expect(sent.code).toBe(0);
    const ids = new LocalQueue({ directory: join(root, ".data", "queue") })
      .receive(10)
      .map((m) => (m.body as { id: string }).id);
    expect(ids).toContain("proc-1");
  });

  it("exits 4 as a process when the endpoint answers that the id is taken with different content, and 6 for status of an unfinished request", async () => {
    // Spawned, not spawnSync: the endpoint runs in this process and must keep answering.
    const herald = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((done) => {
        const child = spawn(process.execPath, [script, ...args], {
          cwd: root,
          env: { PATH: process.env.PATH, NODE_PATH: join(PROJECT_ROOT, "node_modules") },
        });
        let stderr = "";
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
        child.on("close", (code) => done({ code, stderr }));
      });
    const api = await startNotificationsApiServer();
    const notify = (text: string) =>
      herald([
        "notify",
        "--endpoint",
        api.endpoint,
        "--tenant",
        TENANT,
        "--to",
        "c@contoso.com",
        "--text",
        text,
        "--id",
        "proc-taken",
      ]);
    try {
      const first = await notify("first");
      const second = await notify("second");
      const status = await herald([
        "status",
        "proc-taken",
        "--endpoint",
        api.endpoint,
        "--tenant",
        TENANT,
      ]);

      expect(first.code).toBe(0);
      expect(second.code).toBe(4);
      expect(second.stderr).toContain("nothing of it was queued");
      expect(status.code).toBe(6);
    } finally {
      await api.close();
    }
  });

  it("runs through the herald bin of an installed package (no sources, no esbuild), which loads the CLI built in dist/", () => {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    // The package's layout in miniature: the shim where package.json points, the local build
    // helper it asks whether it can build, the CLI in dist/. (In the repository the bin builds
    // the CLI from the sources instead: test/integration/fresh-clone-start.test.ts.)
    const layout = join(root, "package");
    const shim = join(layout, pkg.bin.herald!);
    mkdirSync(dirname(shim), { recursive: true });
    copyFileSync(join(PROJECT_ROOT, pkg.bin.herald!), shim);
    const helper = join(layout, "shared", "local-host", "bin", "local-build.js");
    mkdirSync(dirname(helper), { recursive: true });
    copyFileSync(join(PROJECT_ROOT, "shared", "local-host", "bin", "local-build.js"), helper);
    const unbuilt = spawnSync(process.execPath, [shim, "--help"], { encoding: "utf8" });
    mkdirSync(join(layout, "dist", "shared", "cli"), { recursive: true });
    copyFileSync(script, join(layout, "dist", "shared", "cli", "main.js"));
    const built = spawnSync(process.execPath, [shim, "--help"], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, NODE_PATH: join(PROJECT_ROOT, "node_modules") },
    });

    expect(unbuilt.status).toBe(1);
    expect(unbuilt.stderr).toContain("the CLI is not built");
    expect(unbuilt.stderr).toContain("npm run build");
    expect(built.status).toBe(0);
    expect(built.stdout).toContain("Usage: herald [options] [command]");
  });
});
