/**
 * `npm run azurite:status` and `npm run azurite:stop [-- --force]`: what serves `.data/azurite`,
 * and stopping it (it saves its tables first).
 */
import { join, relative } from "node:path";

import { type FolderAzurite, folderAzurite, stopAzurite } from "./azurite-client";
import { AZURITE_FOLDER, findProjectRoot } from "./settings";

const USAGE = "usage: npm run azurite:status | npm run azurite:stop [-- --force]";

function describe(found: FolderAzurite & { kind: "running" }, where: string): string[] {
  const { status } = found;
  const { persistence } = status;
  return [
    `Azurite process ${status.pid} serves ${where}: ${status.state}, Table service ${status.tableEndpoint ?? "(starting)"}, since ${status.startedAt}`,
    status.hosts.length > 0
      ? `  npm start processes attached: ${status.hosts.join(", ")}`
      : `  no npm start attached; ${status.idleExitAt !== null ? `stops by itself at ${status.idleExitAt}` : "runs until npm run azurite:stop"}`,
    `  tables: ${persistence.file}, ${persistence.saves} saves since it was ready` +
      (persistence.lastSaveAt !== undefined ? `, last at ${persistence.lastSaveAt}` : "") +
      `, unsaved changes: ${persistence.unsavedChanges ? "yes" : "no"} (saved every ${persistence.autosaveIntervalMs / 1000} s)`,
  ];
}

export async function runAzuriteCommand(
  argv: readonly string[],
  io: { out: (line: string) => void; err: (line: string) => void; root?: string },
): Promise<number> {
  const [command, ...rest] = argv;
  const force = rest.includes("--force");
  if (
    (command !== "status" && command !== "stop") ||
    rest.some((arg) => arg !== "--force") ||
    (command === "status" && force)
  ) {
    io.err(USAGE);
    return 2;
  }
  const root = io.root ?? findProjectRoot();
  const dataDir = join(root, AZURITE_FOLDER);
  const where = relative(root, dataDir);
  if (command === "status") {
    const found = await folderAzurite(dataDir);
    if (found.kind === "none") {
      io.out(`No Azurite serves ${where} (npm start starts one).`);
      return 0;
    }
    if (found.kind === "unreachable") {
      io.err(`${where} is held by process ${found.pid}, which does not answer as its Azurite.`);
      return 1;
    }
    for (const line of describe(found, where)) io.out(line);
    return 0;
  }
  const result = await stopAzurite(dataDir, { force });
  switch (result.kind) {
    case "none":
      io.out(`No Azurite serves ${where}.`);
      return 0;
    case "stopped":
      io.out(`Azurite process ${result.pid} saved the tables in ${where} and stopped.`);
      return 0;
    case "refused":
      io.err(
        `Azurite is in use by npm start (process ${result.hosts.join(", ")}): stop it first, or npm run azurite:stop -- --force (that npm start then stops too).`,
      );
      return 1;
    case "unreachable":
      io.err(`${where} is held by process ${result.pid}, which did not stop when asked.`);
      return 1;
  }
}

/** The process entry (`npm run azurite:*`, through shared/local-host/bin/local.js). */
export function main(): void {
  void runAzuriteCommand(process.argv.slice(2), {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
  }).then((code) => {
    process.exitCode = code;
  });
}
