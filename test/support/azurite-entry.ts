import { resolve } from "node:path";

import { buildSync } from "esbuild";

const PROJECT_ROOT = resolve(__dirname, "../..");

/**
 * `npm start` forks `azurite-process-entry.js` from beside main.js, where `npm run build` puts
 * it in `dist/`; under ts-jest only the `.ts` exists, so tests bundle it with esbuild and pass
 * its path as `azuriteEntry`. The bundle goes under node_modules/.cache, so that its
 * `require("azurite/…")` finds the project's node_modules; one per jest worker.
 */
export function buildAzuriteEntry(): string {
  const script = resolve(
    PROJECT_ROOT,
    "node_modules/.cache/herald",
    `azurite-process-entry-${process.pid}.js`,
  );
  buildSync({
    entryPoints: [resolve(PROJECT_ROOT, "shared/local-host/azurite-process-entry.ts")],
    bundle: true,
    platform: "node",
    target: "node22",
    packages: "external",
    outfile: script,
    logLevel: "error",
  });
  return script;
}
