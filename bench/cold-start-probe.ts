/**
 * Run as `node cold-start-probe.js <entry files…>` in a fresh process, with NODE_PATH pointing
 * at a stand-in `@azure/functions-core` (what the Functions worker injects): loads the entry
 * files the way the worker does, and prints how long it took from the process' start until
 * every function was registered through that core API, and what got loaded.
 * No app code is bundled in here: the probe measures the files it is given.
 */
import { statSync } from "node:fs";

interface CoreStub {
  registered: string[];
}

const HEAVY = ["botbuilder", "@azure/service-bus", "@azure/data-tables", "@azure/identity", "zod"];

function main(): void {
  for (const file of process.argv.slice(2)) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the worker loads CommonJS entry files with require
    require(file);
  }
  // Milliseconds since this process started (performance.timeOrigin is set at start-up).
  const readyMs = performance.now();
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the stub the functions library registered through
  const core = require("@azure/functions-core") as CoreStub;
  const files = Object.keys(require.cache).filter(
    (f) => !f.includes("functions-core") && f !== __filename,
  );
  let bytes = 0;
  for (const file of files) {
    try {
      bytes += statSync(file).size;
    } catch {
      // a built-in or virtual module: no file
    }
  }
  const loaded = HEAVY.filter((name) => files.some((f) => f.includes(`/node_modules/${name}/`)));
  process.stdout.write(
    `${JSON.stringify({
      readyMs,
      registered: core.registered,
      modules: files.length,
      bytes,
      heavyLoaded: loaded,
      rssMb: process.memoryUsage.rss() / 2 ** 20,
    })}\n`,
  );
}

main();
