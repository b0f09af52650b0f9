#!/usr/bin/env node
// @ts-check
"use strict";
/**
 * `npm start`, `npm run azurite:status|stop`: builds the program from the sources if they changed
 * (local-build.js, esbuild, about a second), says so, and runs it in this process.
 * usage: node shared/local-host/bin/local.js <start | azurite> [args…]
 */
const { ensureBuilt, OUT, runBuilt } = require("./local-build");

const [name, ...args] = process.argv.slice(2);
if (name !== "start" && name !== "azurite") {
  process.stderr.write("usage: node shared/local-host/bin/local.js <start | azurite> [args…]\n");
  process.exit(2);
}
const announce = name === "start";

ensureBuilt([name], {
  onBuilding: (names) => {
    const what = name === "start" ? "the local host" : names.join(", ");
    // Where the commands print a result, the build is only a note on stderr.
    const line = `Building ${what} with esbuild into ${OUT} (type-checking is npm run typecheck)…`;
    if (announce) process.stdout.write(`${line}\n`);
    else process.stderr.write(`${line}\n`);
  },
}).then(
  ({ built, ms }) => {
    if (announce) {
      process.stdout.write(
        built.length > 0
          ? `Built in ${(ms / 1000).toFixed(1)} s.\n`
          : `The local host in ${OUT} is up to date with the sources.\n`,
      );
    }
    runBuilt(name, args);
  },
  (/** @type {unknown} */ error) => {
    // esbuild has printed the errors with their file and line.
    process.stderr.write(
      `\n${name === "start" ? "npm start" : "herald"}: the build failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}\n`,
    );
    process.exit(1);
  },
);
