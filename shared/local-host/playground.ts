import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";

import { installForPlaygroundUser, waitForPlayground } from "./playground-install";
import { findProjectRoot } from "./settings";

/** How long the Playground may take to listen, and Herald to welcome its user. */
const PLAYGROUND_START_MS = 120_000;
const WELCOME_MS = 20_000;

/**
 * `npm run playground`: the Microsoft 365 Agents Playground (a local Teams emulator) pointed at
 * the bot endpoint `npm start` serves, with the app installed for its user at once (as Teams
 * does when a user adds it), so a notification to that user arrives with no browser open. It
 * opens no browser by itself here (no xdg-open on most servers, and without
 * TEAMSAPPTESTER_BROWSER=none it exits silently); open the printed URL to see the chat.
 */
async function main(): Promise<void> {
  const endpoint =
    process.env.HERALD_BOT_ENDPOINT ??
    `http://127.0.0.1:${process.env.PORT?.trim() || "7071"}/api/messages`;
  const port = process.env.PLAYGROUND_PORT?.trim() || "56150";

  // The playground probes the bot with HEAD before posting; do the same to fail early.
  try {
    const probe = await fetch(endpoint, { method: "HEAD", signal: AbortSignal.timeout(3000) });
    if (probe.status === 404) {
      console.error(`${endpoint} answers 404: is this Herald's npm start?`);
      process.exit(1);
    }
  } catch {
    console.error(
      `The bot endpoint ${endpoint} is not answering. Start it first, in another terminal: npm start`,
    );
    process.exit(1);
  }

  const cli = join(
    dirname(require.resolve("@microsoft/m365agentsplayground/package.json")),
    "cli.js",
  );
  const root = findProjectRoot();
  const configPath =
    process.env.M365_AGENTS_PLAYGROUND_CONFIG_PATH ??
    join(root, "shared", "local-host", "playground.yml");
  // Its default log file is ./devTools/…, which would litter the working tree.
  const logFile =
    process.env.M365_AGENTS_PLAYGROUND_LOGFILE ??
    join(root, ".data", "playground", "playground.log");
  mkdirSync(dirname(logFile), { recursive: true });

  const args = ["start", "-e", endpoint, "-c", "msteams", "-p", port, "--disable-telemetry"];
  console.log(`Agents Playground -> ${endpoint}`);
  console.log(`  context (tenant, users, team): ${relative(root, configPath)}`);
  console.log(`  log: ${relative(root, logFile)}`);
  const child = spawn(process.execPath, [cli, ...args], {
    stdio: "inherit",
    env: {
      ...process.env,
      TEAMSAPPTESTER_BROWSER: process.env.TEAMSAPPTESTER_BROWSER ?? "none",
      M365_AGENTS_PLAYGROUND_CONFIG_PATH: configPath,
      M365_AGENTS_PLAYGROUND_LOGFILE: logFile,
    },
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  child.on("exit", (code, signal) => {
    process.exit(code ?? (signal === "SIGINT" || signal === "SIGTERM" ? 0 : 1));
  });
  await installForItsUser(`http://127.0.0.1:${port}`);
  console.log(`Open http://localhost:${port} in a browser to chat with the bot. Stop: Ctrl+C.`);
}

async function installForItsUser(origin: string): Promise<void> {
  try {
    await waitForPlayground(origin, PLAYGROUND_START_MS);
    const outcome = await installForPlaygroundUser(origin, { welcomeTimeoutMs: WELCOME_MS });
    const { user } = outcome;
    const who = `${user.name}${user.userPrincipalName !== undefined ? ` (${user.userPrincipalName})` : ""}`;
    console.log(
      `Installed the app for ${who} in the personal chat, as Teams does when a user adds it.`,
    );
    console.log(
      outcome.kind === "welcomed"
        ? `Herald welcomed ${user.name}: notifications to ${user.userPrincipalName ?? user.name} in tenant ${user.tenantId} reach this chat now.`
        : `No welcome within ${outcome.waitedMs / 1000} s: Herald welcomes a user once, so after an earlier run on the same .data that is expected. Notifications to ${user.userPrincipalName ?? user.name} in tenant ${user.tenantId} reach this chat.`,
    );
  } catch (error) {
    console.error(
      `Could not install the app for the Playground's user (${(error as Error).message}); opening the page in a browser installs it.`,
    );
  }
}

if (require.main === module) void main();
