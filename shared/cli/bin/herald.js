#!/usr/bin/env node
// The `herald` bin: loads the compiled CLI from dist/ (`npm run build` makes it).
"use strict";
const { existsSync } = require("node:fs");
const { join } = require("node:path");

const entry = join(__dirname, "..", "..", "..", "dist", "shared", "cli", "main.js");
if (!existsSync(entry)) {
  process.stderr.write(
    `herald: the CLI is not built yet (${entry} is missing): run \`npm run build\` first\n`,
  );
  process.exitCode = 1;
} else {
  require(entry);
}
