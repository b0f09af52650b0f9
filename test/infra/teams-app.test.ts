import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import {
  buildTeamsPackage,
  fillManifest,
  main,
  type PackageValues,
  packageValuesSchema,
  pickDeployment,
  readTemplate,
  resolveValues,
  schemaFileFor,
  TEAMS_APP_DIR,
  validateManifest,
} from "../../infra/teams-app/package-teams";
import { decodePng, readZip } from "./support/archives";

const values: PackageValues = {
  botAppId: "0d1f7c5e-2a4b-4c3d-9e8f-112233445566",
  teamsAppId: "6a7b8c9d-0e1f-4a2b-8c3d-aabbccddeeff",
  functionAppHostName: "func-herald-x7k2.azurewebsites.net",
  appVersion: "1.2.3",
  developerName: "Contoso IT",
  websiteUrl: "https://contoso.example/herald",
  privacyUrl: "https://contoso.example/privacy",
  termsOfUseUrl: "https://contoso.example/terms",
};

let workDir: string;
beforeEach(() => {
  workDir = mkdtempSync(path.join(tmpdir(), "herald-teams-"));
});
afterEach(() => {
  rmSync(workDir, { recursive: true, force: true });
});

describe("Teams app manifest template", () => {
  const template = readTemplate();
  const filled = fillManifest(template, values) as Record<string, unknown>;

  it("uses a current schema version that ships with the repository", () => {
    expect(filled.manifestVersion).toBe("1.30");
    expect(schemaFileFor(filled)).toBe(
      path.join(TEAMS_APP_DIR, "schema", "v1.30", "MicrosoftTeams.schema.json"),
    );
    const schema = JSON.parse(readFileSync(schemaFileFor(filled), "utf8")) as {
      properties: { manifestVersion: { const?: string } };
    };
    expect(schema.properties.manifestVersion.const).toBe(filled.manifestVersion);
  });

  it("validates against that schema once its placeholders are filled", () => {
    expect(validateManifest(filled)).toEqual([]);
  });

  it("offers the bot in personal and team scopes, without files", () => {
    expect(filled.bots).toEqual([
      expect.objectContaining({
        botId: values.botAppId,
        scopes: ["personal", "team"],
        supportsFiles: false,
      }),
    ]);
    expect(filled.id).toBe(values.teamsAppId);
    expect(filled.validDomains).toEqual([values.functionAppHostName]);
  });

  it("names the bot's app id in webApplicationInfo, so Graph lets that identity install the app itself", () => {
    // TeamsAppInstallation.ReadWriteSelfForUser.All covers only the app whose
    // webApplicationInfo.id is the caller's app id (msteams-docs, "Send proactive installation
    // messages"); Herald calls Graph as the bot's identity.
    expect(filled.webApplicationInfo).toEqual({
      id: values.botAppId,
      resource: `api://botid-${values.botAppId}`,
    });
  });

  it("asks for the read-receipt permission in the user's 1:1 chat, so Teams sends read receipts", () => {
    const manifest = filled as {
      authorization?: { permissions?: { resourceSpecific?: unknown[] } };
    };
    expect(manifest.authorization?.permissions?.resourceSpecific).toEqual([
      { name: "ChatMessageReadReceipt.Read.Chat", type: "Application" },
    ]);
  });

  it("only uses placeholders the packager fills", () => {
    const placeholders = [...template.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]);
    const known = Object.keys(packageValuesSchema.shape);
    expect(placeholders.filter((p) => !known.includes(p!))).toEqual([]);
    expect(new Set(placeholders)).toEqual(
      new Set([
        "botAppId",
        "teamsAppId",
        "functionAppHostName",
        "appVersion",
        "developerName",
        "websiteUrl",
        "privacyUrl",
        "termsOfUseUrl",
      ]),
    );
    expect(JSON.stringify(filled)).not.toContain("{{");
  });

  it("is rejected by the validator when it breaks the schema (the check can fail)", () => {
    const broken = { ...filled, bots: [{ botId: "not-a-guid", scopes: ["everywhere"] }] };
    delete (broken as Record<string, unknown>).accentColor;
    const errors = validateManifest(broken);
    expect(errors.join("\n")).toMatch(/\/bots\/0\/botId/);
    expect(errors.join("\n")).toMatch(/\/bots\/0\/scopes\/0/);
    expect(errors.join("\n")).toMatch(/accentColor/);
  });

  it("escapes values so they cannot break the JSON", () => {
    const manifest = fillManifest(template, { ...values, developerName: 'Contoso "IT"' }) as {
      developer: { name: string };
    };
    expect(manifest.developer.name).toBe('Contoso "IT"');
  });
});

describe("Teams app icons", () => {
  it("has a 192x192 colour icon", () => {
    const png = decodePng(readFileSync(path.join(TEAMS_APP_DIR, "color.png")));
    expect([png.width, png.height, png.colorType, png.bitDepth]).toEqual([192, 192, 6, 8]);
    // Mostly opaque: a full-colour icon, not an outline.
    let opaque = 0;
    for (let i = 3; i < png.rgba.length; i += 4) if (png.rgba[i] === 255) opaque++;
    expect(opaque / (192 * 192)).toBeGreaterThan(0.8);
  });

  it("has a 32x32 outline icon that is white on transparent", () => {
    const png = decodePng(readFileSync(path.join(TEAMS_APP_DIR, "outline.png")));
    expect([png.width, png.height, png.colorType, png.bitDepth]).toEqual([32, 32, 6, 8]);
    let transparent = 0;
    const notWhite: number[] = [];
    for (let i = 0; i < png.rgba.length; i += 4) {
      if (png.rgba[i + 3] === 0) transparent++;
      else if (png.rgba[i] !== 255 || png.rgba[i + 1] !== 255 || png.rgba[i + 2] !== 255)
        notWhite.push(i / 4);
    }
    expect(notWhite).toEqual([]);
    expect(transparent).toBeGreaterThan(32 * 32 * 0.3);
    expect(transparent).toBeLessThan(32 * 32 * 0.9);
  });
});

describe("npm run package:teams", () => {
  it("zips the filled manifest and both icons at the root of the package", async () => {
    const { outFile } = await buildTeamsPackage(values, path.join(workDir, "app.zip"));
    const entries = readZip(readFileSync(outFile));
    expect([...entries.keys()].sort()).toEqual(["color.png", "manifest.json", "outline.png"]);
    const manifest = JSON.parse(entries.get("manifest.json")!.toString("utf8")) as Record<
      string,
      unknown
    >;
    expect(validateManifest(manifest)).toEqual([]);
    expect(manifest.id).toBe(values.teamsAppId);
    expect(
      entries.get("color.png")!.equals(readFileSync(path.join(TEAMS_APP_DIR, "color.png"))),
    ).toBe(true);
  });

  it("reads the deployment outputs as az prints them", async () => {
    const outputs = path.join(workDir, "outputs.json");
    writeFileSync(
      outputs,
      JSON.stringify({
        botAppId: { type: "String", value: values.botAppId },
        teamsAppId: { type: "String", value: values.teamsAppId },
        functionAppHostName: { type: "String", value: values.functionAppHostName },
        functionAppName: { type: "String", value: "func-herald-x7k2" },
      }),
    );
    const log = jest.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      const out = path.join(workDir, "from-outputs.zip");
      await main(
        ["node", "package-teams", "--outputs", outputs, "--out", out, "--app-version", "2.0.0"],
        {},
      );
      const manifest = JSON.parse(
        readZip(readFileSync(out)).get("manifest.json")!.toString("utf8"),
      ) as {
        version: string;
        bots: { botId: string }[];
        developer: { websiteUrl: string };
      };
      expect(manifest.version).toBe("2.0.0");
      expect(manifest.bots[0]!.botId).toBe(values.botAppId);
      expect(manifest.developer.websiteUrl).toBe(`https://${values.functionAppHostName}/`);
    } finally {
      log.mockRestore();
    }
  });

  it("reads the outputs azd exports to its hooks, and flags win over them", () => {
    const resolved = resolveValues(
      { functionAppHostName: "override.example.net" },
      {},
      {
        botAppId: values.botAppId,
        teamsAppId: values.teamsAppId,
        functionAppHostName: values.functionAppHostName,
      },
    );
    expect(resolved.functionAppHostName).toBe("override.example.net");
    expect(resolved.botAppId).toBe(values.botAppId);
  });

  it("names every missing or malformed value instead of building a broken package", () => {
    expect(() => resolveValues({})).toThrow(
      /botAppId: missing[\s\S]*teamsAppId: missing[\s\S]*functionAppHostName: missing/,
    );
    expect(() =>
      resolveValues({ botAppId: "nope", teamsAppId: values.teamsAppId, functionAppHostName: "x" }),
    ).toThrow(/botAppId: must be a GUID[\s\S]*functionAppHostName: must be a host name/);
  });
});

describe("pickDeployment", () => {
  const deployment = (name: string, timestamp: string, state = "Succeeded", env?: string) => ({
    name,
    tags: env === undefined ? null : { "azd-env-name": env },
    properties: { provisioningState: state, timestamp },
  });

  it("takes main, the name az deployment group create gives, when no azd environment is named", () => {
    expect(pickDeployment([deployment("other", "2026-01-01T00:00:00Z")], undefined)).toBe("main");
  });

  it("takes the latest successful deployment azd made for the environment", () => {
    const list = [
      deployment("dev-1764590000", "2026-12-01T10:00:00Z", "Succeeded", "dev"),
      deployment("dev-1764599000", "2026-12-01T12:30:00Z", "Failed", "dev"),
      deployment("dev-1764595000", "2026-12-01T11:00:00Z", "Succeeded", "dev"),
      deployment("prod-1764596000", "2026-12-01T11:30:00Z", "Succeeded", "prod"),
      deployment("main", "2026-12-01T12:00:00Z"),
    ];
    expect(pickDeployment(list, "dev")).toBe("dev-1764595000");
  });

  it("recognises azd's <environment>-<unix time> name when the tag is missing", () => {
    const list = [deployment("dev-1764590000", "2026-12-01T10:00:00Z")];
    expect(pickDeployment(list, "dev")).toBe("dev-1764590000");
  });

  it("says what it looked for when the environment has no successful deployment", () => {
    expect(() => pickDeployment([deployment("main", "2026-12-01T12:00:00Z")], "dev")).toThrow(
      /azd-env-name tag and names like <environment>-<unix time>.*--deployment/s,
    );
  });
});
