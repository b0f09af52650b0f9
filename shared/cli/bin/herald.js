#!/usr/bin/env node
// @ts-check
// The `herald` bin. In the repository it builds the CLI from the sources when they changed
// (shared/local-host/bin/local-build.js, esbuild, well under a second) and runs it: no build
// step first. An installed package (no esbuild) runs the CLI `npm run build` compiled to dist/.
"use strict";
const { existsSync } = require("node:fs");
const { join } = require("node:path");

const local = require("../../local-host/bin/local-build.js");

if (local.canBuild()) {
  local
    .ensureBuilt(["cli"], {
      onBuilding: () => process.stderr.write(`herald: building the CLI into ${local.OUT}…\n`),
    })
    .then(
      () => local.runBuilt("cli", process.argv.slice(2)),
      (/** @type {unknown} */ error) => {
        process.stderr.write(`herald: the build failed: ${String(error)}\n`);
        process.exitCode = 1;
      },
    );
} else {
  const entry = join(__dirname, "..", "..", "..", "dist", "shared", "cli", "main.js");
  if (!existsSync(entry)) {
    process.stderr.write(`herald: the CLI is not built (${entry} is missing): npm run build\n`);
    process.exitCode = 1;
  } else {
    require(entry);
  }
}
