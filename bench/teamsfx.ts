import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * TeamsFx 2.3.3: the last release whose `ConversationBot` notification API (the Teams Toolkit
 * "notification bot" template) runs on botbuilder. 4.x dropped that API; the package as a
 * whole is deprecated in favour of the Teams SDK.
 */
export const TEAMSFX_VERSION = "2.3.3";
const TEAMS_JS_VERSION = "2.19.0";

export type TeamsFxInstall =
  | { readonly ok: true; readonly modulePath: string; readonly version: string }
  | { readonly ok: false; readonly reason: string };

/**
 * The baseline's TeamsFx, installed into bench/out/teamsfx (scratch, git-ignored) and not into
 * Herald's package.json: it brings ~290 packages (~280 MB) and a transitive install script
 * (`@microsoft/recognizers-text-suite` runs `npx rimraf`) that fails offline, so it is installed
 * with scripts off, once, and only for the benchmark. When it cannot be installed, the
 * benchmark says why and runs the botbuilder baselines alone.
 */
export async function ensureTeamsFx(outDir: string): Promise<TeamsFxInstall> {
  const dir = join(outDir, "teamsfx");
  const modulePath = join(dir, "node_modules/@microsoft/teamsfx");
  const installed = () => {
    const pkg = join(modulePath, "package.json");
    return existsSync(pkg)
      ? (JSON.parse(readFileSync(pkg, "utf8")) as { version?: string }).version
      : undefined;
  };
  if (installed() !== TEAMSFX_VERSION) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "package.json"),
      '{ "name": "herald-bench-teamsfx", "private": true }\n',
    );
    try {
      await run(
        process.platform === "win32" ? "npm.cmd" : "npm",
        [
          "install",
          "--ignore-scripts",
          "--no-audit",
          "--no-fund",
          "--no-save",
          `@microsoft/teamsfx@${TEAMSFX_VERSION}`,
          `@microsoft/teams-js@${TEAMS_JS_VERSION}`,
        ],
        { cwd: dir, timeout: 180_000 },
      );
    } catch (error) {
      const detail = (error as { stderr?: string }).stderr ?? String(error);
      return { ok: false, reason: `npm install failed: ${detail.trim().split("\n").at(-1) ?? ""}` };
    }
  }
  const version = installed();
  if (version !== TEAMSFX_VERSION) return { ok: false, reason: "not installed after npm install" };
  return { ok: true, modulePath, version };
}
