import { buildSync } from "esbuild";

/**
 * Bundles a TypeScript entry into one CommonJS file for Node 22, packages left to `require`
 * (from node_modules above `outfile`, or NODE_PATH): how tests run a module as a real process.
 */
export function bundleEntry(entry: string, outfile: string): string {
  buildSync({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target: "node22",
    packages: "external",
    outfile,
    logLevel: "error",
  });
  return outfile;
}
