import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { run } from "../../shared/cli/cli";
import { lineRanges } from "../../shared/cli/notify-command";
import { classifyRecipient } from "../../shared/cli/recipients";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/** Runs the CLI in-process in an empty folder, with no transport settings in the environment. */
async function herald(args: string[], cwd: string) {
  let stdout = "";
  let stderr = "";
  const code = await run(args, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env: {},
    cwd,
  });
  return { code, stdout, stderr };
}

describe("herald CLI", () => {
  let cwd: string;
  beforeEach(() => {
    cwd = mkdtempSync(join(tmpdir(), "herald-cli-unit-"));
  });
  afterEach(() => rmSync(cwd, { recursive: true, force: true }));

  /** Nothing was written: no local queue folder was even created. */
  function nothingSent(): void {
    expect(readdirSync(cwd).filter((n) => n !== "card.json")).toEqual([]);
  }

  describe("--help", () => {
    it("lists the commands and the exit codes, and exits 0", async () => {
      const { code, stdout } = await herald(["--help"], cwd);

      expect(code).toBe(0);
      expect(stdout).toContain("Usage: herald [options] [command]");
      expect(stdout).toMatch(/notify \[options\]/);
      expect(stdout).toMatch(/status \[options\] <id>/);
      expect(stdout).toContain("2  usage or validation error: nothing was sent");
      expect(stdout).toContain("4  conflict: the id is already used in the tenant");
      expect(stdout).toContain("5  final, but not everyone was reached");
      expect(stdout).toContain("6  not final yet");
    });

    it("documents status --tenant and --wait, and what completed means for the exit code", async () => {
      const { code, stdout } = await herald(["status", "--help"], cwd);

      expect(code).toBe(0);
      expect(stdout).toContain("--tenant <tenantId>");
      expect(stdout).toContain("--wait [seconds]");
      expect(stdout.replace(/\s+/g, " ")).toContain(
        "the exit code says whether all were reached (0) or not (5); 6 means not final yet",
      );
    });

    it("documents every notify flag, the transports and examples", async () => {
      const { code, stdout } = await herald(["notify", "--help"], cwd);

      expect(code).toBe(0);
      for (const flag of [
        "--tenant <tenantId>",
        "--to <recipient>",
        "--team <teamId>",
        "--text <text>",
        "--card <file>",
        "--summary <text>",
        "--not-before <iso>",
        "--id <id>",
        "--correlation-id <id>",
        "--file <requests.jsonl>",
        "--skip-invalid",
        "--namespace <fqdn>",
        "--connection-string <string>",
        "--endpoint <url>",
        "--function-key <key>",
        "--queue-dir <path>",
        "--wait [seconds]",
        "--status-endpoint <url>",
      ]) {
        expect(stdout).toContain(flag);
      }
      expect(stdout).toContain("SERVICEBUS_CONNECTION_STRING");
      expect(stdout).toContain("HERALD_FUNCTION_KEY");
      expect(stdout.replace(/\s+/g, " ")).toContain('"Azure Service Bus Data Sender" role');
      expect(stdout).toContain("herald notify --tenant");
      expect(stdout.replace(/\s+/g, " ")).toContain("or a conflict (4:");
    });

    it("prints the version", async () => {
      const { code, stdout } = await herald(["--version"], cwd);
      expect(code).toBe(0);
      expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    });
  });

  describe("usage errors exit 2 and send nothing", () => {
    it.each([
      ["no command", [], /Usage: herald/],
      ["an unknown command", ["shout"], /unknown command 'shout'/],
      ["an unknown option", ["notify", "--loud"], /unknown option '--loud'/],
      ["no tenant", ["notify", "--to", "a@b.c", "--text", "hi"], /missing --tenant <tenantId>/],
      [
        "no recipient",
        ["notify", "--tenant", TENANT, "--text", "hi"],
        /missing --to <recipient>, --team <teamId> or --group <groupId>/,
      ],
      [
        "no message",
        ["notify", "--tenant", TENANT, "--to", "a@b.c"],
        /missing --text <text> or --card/,
      ],
      [
        "text and card",
        ["notify", "--tenant", TENANT, "--to", "a@b.c", "--text", "hi", "--card", "c.json"],
        /either --text or --card/,
      ],
      [
        "an unrecognisable recipient",
        ["notify", "--tenant", TENANT, "--to", "bob", "--text", "hi"],
        /--to bob: not a recognisable recipient/,
      ],
      [
        "a bad --format",
        ["notify", "--tenant", TENANT, "--to", "a@b.c", "--text", "hi", "--format", "html"],
        /argument 'html' is invalid/,
      ],
      [
        "two places to send to",
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "a@b.c",
          "--text",
          "hi",
          "--endpoint",
          "http://x",
          "--queue-dir",
          "q",
        ],
        /choose one place to send to: --endpoint, --queue-dir/,
      ],
      [
        "--file with --to",
        ["notify", "--file", "r.jsonl", "--to", "a@b.c"],
        /--to cannot be combined with it/,
      ],
      ["a missing bulk file", ["notify", "--file", "missing.jsonl"], /cannot read missing\.jsonl/],
      [
        "a missing card file",
        ["notify", "--tenant", TENANT, "--to", "a@b.c", "--card", "nope.json"],
        /--card nope\.json/,
      ],
      ["status without an id", ["status"], /missing required argument 'id'/],
      ["status with a malformed id", ["status", "has space"], /is not a request id/],
      ["status with a malformed tenant", ["status", "x1", "--tenant", "contoso"], /must be a GUID/],
      [
        "--wait with a bulk file",
        ["notify", "--file", "r.jsonl", "--wait"],
        /--wait applies to one notification/,
      ],
      [
        "--status-endpoint without --wait",
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "a@b.c",
          "--text",
          "hi",
          "--status-endpoint",
          "http://x",
        ],
        /--status-endpoint applies with --wait only/,
      ],
      [
        "--wait over Service Bus with no endpoint to read the status from",
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "a@b.c",
          "--text",
          "hi",
          "--namespace",
          "contoso.servicebus.windows.net",
          "--wait",
        ],
        /--wait over Service Bus needs Herald's HTTP endpoint/,
      ],
    ])("for %s", async (_name, args, message) => {
      const { code, stderr } = await herald(args, cwd);

      expect(code).toBe(2);
      expect(stderr).toMatch(message);
      nothingSent();
    });
  });

  describe("validation errors exit 2, name the field and its flag, and send nothing", () => {
    it("names the tenant and each bad recipient", async () => {
      const { code, stderr } = await herald(
        [
          "notify",
          "--tenant",
          "contoso",
          "--to",
          "alice@contoso.com",
          "--to",
          "29:",
          "--text",
          "hi",
        ],
        cwd,
      );

      expect(code).toBe(2);
      expect(stderr).toContain("the notification is invalid, nothing was sent");
      expect(stderr).toContain("tenantId (--tenant): must be a GUID");
      expect(stderr).toContain(
        "recipients.1.teamsUserId (--to 29:): must be a Teams user id starting with '29:'",
      );
      expect(stderr).not.toContain("recipients.0");
      nothingSent();
    });

    it("names a bad --not-before and a bad card field", async () => {
      writeFileSync(
        join(cwd, "card.json"),
        JSON.stringify({ type: "AdaptiveCard", version: "2", body: [] }),
      );

      const { code, stderr } = await herald(
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "alice@contoso.com",
          "--card",
          "card.json",
          "--not-before",
          "soon",
        ],
        cwd,
      );

      expect(code).toBe(2);
      expect(stderr).toContain(
        "notBefore (--not-before): must be an ISO 8601 date-time with a time zone",
      );
      expect(stderr).toContain(
        "message.adaptiveCard.version (--card): must be an Adaptive Card version",
      );
      nothingSent();
    });

    it("validates without sending on --dry-run and prints the request", async () => {
      const { code, stdout } = await herald(
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "alice@contoso.com",
          "--text",
          "hi",
          "--id",
          "dry-1",
          "--dry-run",
        ],
        cwd,
      );

      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toMatchObject({ id: "dry-1", schemaVersion: 1, tenantId: TENANT });
      nothingSent();
    });

    it("sends an Entra group with --group, and its guests only with --include-guests", async () => {
      const group = "3b9e2f1c-7d4a-4e8b-9c6f-1a2d3e4f5a6b";
      const { code, stdout } = await herald(
        [
          "notify",
          "--tenant",
          TENANT,
          "--group",
          group,
          "--include-guests",
          "--text",
          "hi",
          "--dry-run",
        ],
        cwd,
      );
      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toMatchObject({
        recipients: [{ groupId: group }],
        includeGuests: true,
      });

      const alone = await herald(
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "alice@contoso.com",
          "--include-guests",
          "--text",
          "hi",
        ],
        cwd,
      );
      expect(alone.code).toBe(2);
      expect(alone.stderr).toContain("--include-guests applies to --group only");
      nothingSent();
    });
  });
});

describe("classifyRecipient", () => {
  it.each([
    ["alice@contoso.com", { userPrincipalName: "alice@contoso.com" }],
    ["29:1AbCdEf", { teamsUserId: "29:1AbCdEf" }],
    [
      "6a1e5b0c-3f4d-4d43-9a9e-2b7c1d0e8f11",
      { aadObjectId: "6a1e5b0c-3f4d-4d43-9a9e-2b7c1d0e8f11" },
    ],
    ["19:abc@thread.tacv2", { teamId: "19:abc@thread.tacv2" }],
    ["bob", undefined],
  ])("reads %s as %j", (value, expected) => {
    expect(classifyRecipient(value)).toEqual(expected);
  });
});

describe("lineRanges", () => {
  it("compresses consecutive lines", () => {
    expect(lineRanges([9, 3, 4, 5, 12, 13, 14, 20])).toBe("3-5, 9, 12-14, 20");
  });
});
