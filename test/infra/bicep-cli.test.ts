import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import {
  BICEP_VERSION,
  HOW_TO_ENABLE,
  locateBicep,
  parseDiagnostics,
  restoredExecutable,
  restoreProject,
} from "../../infra/bicep-cli";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "herald-bicep-cli-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function fakeExecutable(name: string, script: string): string {
  const file = path.join(dir, "bin", name);
  writeFileSync(file, `#!/bin/sh\n${script}\n`);
  chmodSync(file, 0o755);
  return file;
}

describe("locateBicep", () => {
  it("reports the CLI missing, without throwing, when neither bicep nor dotnet is on PATH", () => {
    const found = locateBicep({ env: { PATH: path.join(dir, "empty") }, toolsDir: dir });
    expect(found).toEqual({ kind: "missing", reason: "neither `bicep` nor `dotnet` is on PATH" });
    expect(HOW_TO_ENABLE).toContain("npm run infra:build");
  });

  it("reports the CLI missing with NuGet's reason, without throwing, when dotnet is here but no feed answers", () => {
    mkdirSync(path.join(dir, "bin"));
    // What `dotnet restore` prints and exits with when its NuGet source cannot be reached.
    const dotnet = fakeExecutable(
      "dotnet",
      [
        'echo "  Determining projects to restore..."',
        'echo "/r/restore-bicep.csproj : error NU1301: Unable to load the service index for source http://127.0.0.1:9/v3/index.json." >&2',
        "exit 1",
      ].join("\n"),
    );
    const found = locateBicep({
      restoreWithDotnet: true,
      env: { PATH: path.dirname(dotnet) },
      toolsDir: path.join(dir, "tools"),
    });
    expect(found).toEqual({
      kind: "missing",
      reason: `dotnet could not restore Azure.Bicep.CommandLine.linux-x64 ${BICEP_VERSION} from NuGet (NU1301)`,
    });
  });

  it("still fails loudly when dotnet restore breaks for another reason than an unreachable feed", () => {
    mkdirSync(path.join(dir, "bin"));
    const dotnet = fakeExecutable(
      "dotnet",
      'echo "error MSB4025: The project file could not be loaded." >&2; exit 1',
    );
    expect(() =>
      locateBicep({
        restoreWithDotnet: true,
        env: { PATH: path.dirname(dotnet) },
        toolsDir: path.join(dir, "tools"),
      }),
    ).toThrow(/MSB4025/);
  });

  it("uses bicep from PATH before any restored copy, with the version it reports", () => {
    mkdirSync(path.join(dir, "bin"));
    const bicep = fakeExecutable("bicep", 'echo "Bicep CLI version 9.8.7 (abcdef)"');
    const found = locateBicep({ env: { PATH: path.join(dir, "bin") }, toolsDir: dir });
    expect(found).toEqual({ kind: "found", file: bicep, version: "9.8.7", from: "PATH" });
  });

  it("uses a previous restore and gives its executable the x bit NuGet drops", () => {
    const file = restoredExecutable(dir);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, "#!/bin/sh\n");
    chmodSync(file, 0o644);
    const found = locateBicep({ env: { PATH: path.join(dir, "empty") }, toolsDir: dir });
    expect(found).toMatchObject({ kind: "found", file, version: BICEP_VERSION });
    expect(statSync(file).mode & 0o111).not.toBe(0);
  });
});

describe("restoreProject", () => {
  it("downloads exactly the pinned CLI package version", () => {
    expect(restoreProject()).toContain(
      `<PackageDownload Include="Azure.Bicep.CommandLine.linux-x64" Version="[${BICEP_VERSION}]" />`,
    );
  });
});

describe("parseDiagnostics", () => {
  it("reads errors and warnings once each, even when build and lint both print them", () => {
    const line =
      "/r/infra/modules/storage.bicep(40,60) : Warning use-recent-api-versions: Use more recent API version. [https://aka.ms/x]";
    const found = parseDiagnostics(
      [line, line, '/r/infra/main.bicep(3,1) : Error BCP018: Expected the "=" character.'].join(
        "\n",
      ),
    );
    expect(found.map((d) => [path.basename(d.file), d.line, d.level, d.code])).toEqual([
      ["storage.bicep", 40, "Warning", "use-recent-api-versions"],
      ["main.bicep", 3, "Error", "BCP018"],
    ]);
  });
});
