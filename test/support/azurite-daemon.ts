import { resolve } from "node:path";

import { bundleEntry } from "./bundle";

const PROJECT_ROOT = resolve(__dirname, "../..");

/**
 * The data folder's Azurite process runs `azurite-daemon.js`, which npm start's build puts beside
 * its host in build/local; under ts-jest only the `.ts` exists, so tests bundle it with esbuild
 * and pass its path. The bundle goes under node_modules/.cache, so that its
 * `require("azurite/…")` finds the project's node_modules; one per jest worker. Its name keeps
 * `azurite-daemon`, which the folder lock looks for on a holder's command line.
 */
export function buildAzuriteDaemon(): string {
  return bundleEntry(
    resolve(PROJECT_ROOT, "shared/local-host/azurite-daemon.ts"),
    resolve(PROJECT_ROOT, "node_modules/.cache/herald", `azurite-daemon-${process.pid}.js`),
  );
}
