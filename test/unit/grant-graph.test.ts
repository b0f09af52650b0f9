import { spawnSync } from "node:child_process";

import {
  type AzRunner,
  main,
  MICROSOFT_GRAPH_APP_ID,
  parseArgs,
  planScript,
  runGrant,
} from "../../infra/grant-graph";

const PRINCIPAL = "11111111-2222-4333-8444-555555555555";
const GRAPH_SP = "99999999-8888-4777-8666-555555555555";
const ROLES = {
  "TeamsAppInstallation.ReadWriteSelfForUser.All": "908de74d-f8b2-4d6b-a9ed-2a17b3b78179",
  "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
  "GroupMember.Read.All": "98830695-27a2-44f7-8c18-0c3ebc9698f6",
  "AppCatalog.Read.All": "e12dae10-5a57-4817-b79d-dfbec5348930",
};
const args = (...rest: string[]) => ["node", "grant-graph", ...rest];

/** A fake `az`: Graph's service principal with its roles, and the assignments made so far. */
function fakeAz(alreadyAssigned: string[] = []) {
  const calls: string[][] = [];
  const assigned = new Set(alreadyAssigned);
  const az: AzRunner = (argv) => {
    calls.push([...argv]);
    const url = argv[argv.indexOf("--url") + 1] ?? "";
    const method = argv[argv.indexOf("--method") + 1];
    if (argv[0] === "identity") return { principalId: PRINCIPAL };
    if (url.includes(`servicePrincipals(appId='${MICROSOFT_GRAPH_APP_ID}')`))
      return {
        id: GRAPH_SP,
        appRoles: [
          ...Object.entries(ROLES).map(([value, id]) => ({
            id,
            value,
            allowedMemberTypes: ["Application"],
          })),
          // The delegated twin of a role is not an app role for an application.
          {
            id: "00000000-0000-4000-8000-000000000001",
            value: "User.Read.All",
            allowedMemberTypes: ["User"],
          },
        ],
      };
    if (url.endsWith("/appRoleAssignments") && method === "GET")
      return {
        value: [...assigned].map((appRoleId) => ({ appRoleId, resourceId: GRAPH_SP })),
      };
    if (url.endsWith("/appRoleAssignments") && method === "POST") {
      const body = JSON.parse(argv[argv.indexOf("--body") + 1] ?? "{}") as { appRoleId: string };
      assigned.add(body.appRoleId);
      return { id: "assignment" };
    }
    throw new Error(`unexpected az ${argv.join(" ")}`);
  };
  return { az, calls, assigned };
}

describe("grant:graph", () => {
  describe("the printed plan", () => {
    const script = main(args("--principal-id", PRINCIPAL));

    it("grants exactly the three application permissions Herald needs, each only if missing", () => {
      const granted = [...script.matchAll(/echo "granted (\S+)"/g)].map((m) => m[1]);
      expect(granted).toEqual([
        "TeamsAppInstallation.ReadWriteSelfForUser.All",
        "User.Read.All",
        "GroupMember.Read.All",
      ]);
      expect(script.match(/if \[ "\$EXISTING" = "0" \]/g)).toHaveLength(3);
      expect(script).not.toContain("AppCatalog.Read.All");
    });

    it("assigns the roles to the given principal on Microsoft Graph's service principal", () => {
      expect(script).toContain(`PRINCIPAL_ID=${PRINCIPAL}`);
      expect(script).toContain(`servicePrincipals(appId=`);
      expect(script).toContain(MICROSOFT_GRAPH_APP_ID);
      expect(script).toContain(
        '--url "https://graph.microsoft.com/v1.0/servicePrincipals/$PRINCIPAL_ID/appRoleAssignments"',
      );
      expect(script).toContain("allowedMemberTypes, '\\''Application'\\''");
    });

    it("is a bash script that parses", () => {
      const bash = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
      expect([bash.status, bash.stderr]).toEqual([0, ""]);
    });

    it("resolves a managed identity by name with az, and targets a national cloud's Graph", () => {
      const plan = main(
        args("--identity-name", "id-herald", "-g", "rg-herald", "--cloud", "usgov"),
      );
      expect(plan).toContain(
        "PRINCIPAL_ID=$(az identity show --name id-herald --resource-group rg-herald --query principalId --output tsv)",
      );
      expect(plan).toContain("--resource https://graph.microsoft.us");
      expect(plan).not.toContain("graph.microsoft.com");
    });

    it("adds AppCatalog.Read.All only when asked for the catalog lookup", () => {
      const plan = planScript(
        parseArgs(args("--principal-id", PRINCIPAL, "--catalog-lookup")).inputs,
      );
      expect(plan).toContain('echo "granted AppCatalog.Read.All"');
    });
  });

  describe("arguments", () => {
    it.each([
      [[], /--principal-id/],
      [["--principal-id", "not-a-guid"], /must be a GUID/],
      [["--identity-name", "id-herald"], /needs --resource-group/],
      [["--principal-id", PRINCIPAL, "--graph-endpoint", "http://graph.example"], /https origin/],
    ])("refuses %j", (extra, message) => {
      expect(() => parseArgs(args(...extra))).toThrow(message);
    });
  });

  describe("--run", () => {
    it("assigns each missing role once and skips those already assigned", () => {
      const { az, calls, assigned } = fakeAz([ROLES["User.Read.All"]]);
      const outcomes = runGrant(parseArgs(args("--principal-id", PRINCIPAL, "--run")).inputs, az);
      expect(outcomes).toEqual([
        { permission: "TeamsAppInstallation.ReadWriteSelfForUser.All", result: "granted" },
        { permission: "User.Read.All", result: "already-granted" },
        { permission: "GroupMember.Read.All", result: "granted" },
      ]);
      const posts = calls.filter((c) => c.includes("POST"));
      expect(posts.map((c) => JSON.parse(c[c.indexOf("--body") + 1]!) as unknown)).toEqual([
        {
          principalId: PRINCIPAL,
          resourceId: GRAPH_SP,
          appRoleId: ROLES["TeamsAppInstallation.ReadWriteSelfForUser.All"],
        },
        { principalId: PRINCIPAL, resourceId: GRAPH_SP, appRoleId: ROLES["GroupMember.Read.All"] },
      ]);
      expect(assigned.size).toBe(3);
    });

    it("changes nothing the second time", () => {
      const fake = fakeAz();
      const inputs = parseArgs(args("--identity-name", "id-herald", "-g", "rg", "--run")).inputs;
      runGrant(inputs, fake.az);
      const before = fake.calls.length;
      expect(runGrant(inputs, fake.az).map((o) => o.result)).toEqual(
        Array(3).fill("already-granted"),
      );
      expect(fake.calls.slice(before).filter((c) => c.includes("POST"))).toEqual([]);
    });
  });
});
