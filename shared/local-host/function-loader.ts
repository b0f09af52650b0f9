import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/**
 * The files the Functions host loads: package.json `main`, a file or a `folder/*.js` glob
 * (`dist/functions/*.js` here). Reading the same field keeps `npm start` and `func start` on
 * the same set of functions.
 */
export function functionEntryFiles(projectRoot: string): string[] {
  const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as {
    main?: unknown;
  };
  if (typeof pkg.main !== "string" || pkg.main.trim() === "") {
    throw new Error("package.json has no main: the Functions host would find no functions");
  }
  const main = pkg.main.trim();
  if (!main.includes("*")) {
    const file = resolve(projectRoot, main);
    if (!existsSync(file))
      throw new Error(`package.json main ${main} does not exist: run the build`);
    return [file];
  }
  const folder = resolve(projectRoot, dirname(main));
  const pattern = main.slice(main.lastIndexOf("/") + 1);
  if (dirname(main).includes("*") || pattern.includes("{")) {
    throw new Error(`package.json main ${main}: only "folder/*.js" globs are supported locally`);
  }
  if (!existsSync(folder)) {
    throw new Error(`${dirname(main)} does not exist: run the build (npm run build)`);
  }
  const regex = new RegExp(`^${pattern.split("*").map(escapeRegex).join(".*")}$`);
  return readdirSync(folder)
    .filter((name) => regex.test(name))
    .sort()
    .map((name) => join(folder, name));
}

/** Loads each entry file once, as the worker does; each registers its functions on load. */
export function loadFunctionModules(files: readonly string[]): void {
  for (const file of files) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- the host loads CommonJS entry files the same way
      require(file);
    } catch (error) {
      throw new Error(`Loading ${file} failed: ${(error as Error).stack ?? String(error)}`, {
        cause: error,
      });
    }
  }
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
