import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { run } from "../../shared/cli/cli";
import { LocalQueue, type ReceivedMessage } from "../../shared/queue/local-queue";
import {
  type NotificationsApiServer,
  startNotificationsApiServer,
} from "../support/notifications-api-server";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const KEY = "cli-function-key";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI in-process; stderr can pose as a terminal to show the progress bar. */
async function herald(
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; tty?: boolean },
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await run(args, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: {
      write: (chunk: string) => (stderr += chunk),
      isTTY: options.tty ?? false,
      columns: 100,
    },
    env: options.env ?? {},
    cwd: options.cwd,
    clientOptions: { httpMaxTries: 1 },
    sleep: () => Promise.resolve(),
  });
  return { code, stdout, stderr };
}

function line(id: string, overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    id,
    tenantId: TENANT,
    recipients: [{ userPrincipalName: `${id}@contoso.com` }],
    message: { text: `Hello ${id}` },
    ...overrides,
  });
}

describe("herald notify", () => {
  let cwd: string;
  let queue: LocalQueue;

  beforeEach(() => {
    cwd = mkdtempSync(join(tmpdir(), "herald-cli-"));
    // The default target: .data/queue under the working folder, as npm start uses it.
    queue = new LocalQueue({ directory: join(cwd, ".data", "queue") });
  });
  afterEach(() => rmSync(cwd, { recursive: true, force: true }));

  async function received(): Promise<ReceivedMessage[]> {
    return queue.receive(1000);
  }

  describe("to the local queue (the default)", () => {
    it("queues one notification, prints its id and exits 0", async () => {
      const { code, stdout, stderr } = await herald(
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "alice@contoso.com",
          "--to",
          "6a1e5b0c-3f4d-4d43-9a9e-2b7c1d0e8f11",
          "--to",
          "29:1AbC",
          "--team",
          "19:release@thread.tacv2",
          "--text",
          "Release **4.2** ships tonight",
          "--summary",
          "Release tonight",
          "--not-before",
          "2030-01-01T09:00:00Z",
          "--correlation-id",
          "rel-42",
        ],
        { cwd },
      );

      expect(code).toBe(0);
      const id = stdout.trim();
      expect(stderr).toContain(
        `Queued notification ${id} on local queue ${join(cwd, ".data", "queue", "notifications")}`,
      );
      const [message, ...rest] = await received();
      expect(rest).toHaveLength(0);
      expect(message!.messageId).toBe(id);
      expect(message!.body).toEqual({
        schemaVersion: 1,
        id,
        tenantId: TENANT,
        recipients: [
          { userPrincipalName: "alice@contoso.com" },
          { aadObjectId: "6a1e5b0c-3f4d-4d43-9a9e-2b7c1d0e8f11" },
          { teamsUserId: "29:1AbC" },
          { teamId: "19:release@thread.tacv2" },
        ],
        message: { text: "Release **4.2** ships tonight" },
        summary: "Release tonight",
        notBefore: "2030-01-01T09:00:00Z",
        correlationId: "rel-42",
      });
    });

    it("sends an Adaptive Card from a file under the given id", async () => {
      const card = {
        type: "AdaptiveCard",
        version: "1.5",
        body: [{ type: "TextBlock", text: "Approve?" }],
      };
      writeFileSync(join(cwd, "card.json"), JSON.stringify(card));

      const { code, stdout } = await herald(
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "alice@contoso.com",
          "--card",
          "card.json",
          "--id",
          "approval-7",
          "--json",
        ],
        { cwd },
      );

      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toEqual({ ids: ["approval-7"], skipped: [] });
      const [message] = await received();
      expect(message!.messageId).toBe("approval-7");
      expect(message!.body).toMatchObject({ message: { adaptiveCard: card } });
    });

    it("uses --queue-dir, and LocalQueueDirectory from the environment", async () => {
      const other = join(cwd, "elsewhere");
      const byFlag = await herald(
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "a@contoso.com",
          "--text",
          "x",
          "--queue-dir",
          "elsewhere",
        ],
        { cwd },
      );
      const byEnv = await herald(
        ["notify", "--tenant", TENANT, "--to", "b@contoso.com", "--text", "y"],
        {
          cwd,
          env: { LocalQueueDirectory: other },
        },
      );

      expect([byFlag.code, byEnv.code]).toEqual([0, 0]);
      const ids = (await new LocalQueue({ directory: other }).receive(10)).map((m) => m.messageId);
      expect(ids.sort()).toEqual([byFlag.stdout.trim(), byEnv.stdout.trim()].sort());
      expect(await received()).toHaveLength(0);
    });
  });

  describe("--file (JSON Lines)", () => {
    it("sends every line, prints the ids and exits 0", async () => {
      writeFileSync(
        join(cwd, "requests.jsonl"),
        [
          line("a"),
          "",
          line("b"),
          JSON.stringify({
            tenantId: TENANT,
            recipients: [{ teamsUserId: "29:x" }],
            message: { text: "no id" },
          }),
        ].join("\n"),
      );

      const { code, stdout, stderr } = await herald(["notify", "--file", "requests.jsonl"], {
        cwd,
      });

      expect(code).toBe(0);
      const ids = stdout.trim().split("\n");
      expect(ids).toHaveLength(3);
      expect(ids.slice(0, 2)).toEqual(["a", "b"]);
      expect(stderr).toContain("Queued 3 notifications");
      expect((await received()).map((m) => m.messageId).sort()).toEqual([...ids].sort());
    });

    it("reports a bad line with its number and field, sends nothing and exits 2", async () => {
      writeFileSync(
        join(cwd, "requests.jsonl"),
        [line("a"), line("b", { tenantId: "contoso" }), line("c"), "{not json", line("a")].join(
          "\n",
        ),
      );

      const { code, stdout, stderr } = await herald(["notify", "--file", "requests.jsonl"], {
        cwd,
      });

      expect(code).toBe(2);
      expect(stdout).toBe("");
      expect(stderr).toContain("3 invalid lines in requests.jsonl");
      expect(stderr).toContain("line 2: tenantId: must be a GUID");
      expect(stderr).toMatch(/line 4: \(line\): not valid JSON/);
      expect(stderr).toContain('line 5: id: "a" is already used on line 1');
      expect(stderr).toContain(
        "Nothing was sent. Fix the lines, or pass --skip-invalid to send the 2 valid ones.",
      );
      expect(await received()).toHaveLength(0);
    });

    it("with --skip-invalid sends every valid line, lists the skipped ones and exits 3", async () => {
      writeFileSync(
        join(cwd, "requests.jsonl"),
        [line("a"), line("b", { recipients: [] }), line("c"), line("d")].join("\n"),
      );

      const { code, stdout, stderr } = await herald(
        ["notify", "--file", "requests.jsonl", "--skip-invalid", "--json"],
        { cwd },
      );

      expect(code).toBe(3);
      expect(JSON.parse(stdout)).toEqual({
        ids: ["a", "c", "d"],
        skipped: [
          {
            line: 2,
            errors: [{ path: "recipients", message: "must name at least one recipient" }],
          },
        ],
      });
      expect(stderr).toContain("line 2: recipients: must name at least one recipient");
      expect(stderr).toContain("Skipped 1 invalid line: 2.");
      expect((await received()).map((m) => m.messageId).sort()).toEqual(["a", "c", "d"]);
    });

    it("fills in --tenant for lines that leave it out", async () => {
      writeFileSync(
        join(cwd, "requests.jsonl"),
        JSON.stringify({
          id: "t1",
          recipients: [{ teamsUserId: "29:x" }],
          message: { text: "hi" },
        }),
      );

      const { code } = await herald(["notify", "--file", "requests.jsonl", "--tenant", TENANT], {
        cwd,
      });

      expect(code).toBe(0);
      expect((await received())[0]!.body).toMatchObject({ id: "t1", tenantId: TENANT });
    });

    it("shows a progress bar on a terminal only", async () => {
      const lines = Array.from({ length: 30 }, (_, i) => line(`p${i}`)).join("\n");
      writeFileSync(join(cwd, "requests.jsonl"), lines);

      const onTerminal = await herald(["notify", "--file", "requests.jsonl"], { cwd, tty: true });
      const piped = await herald(["notify", "--file", "requests.jsonl", "--queue-dir", "q2"], {
        cwd,
      });

      expect(onTerminal.code).toBe(0);
      expect(onTerminal.stderr).toContain("Sending |");
      expect(onTerminal.stderr).toContain("30/30 notifications");
      expect(piped.stderr).not.toContain("Sending |");
      expect(piped.stderr).not.toContain("\u001b[");
    });
  });

  describe("through the HTTP endpoint", () => {
    let api: NotificationsApiServer;
    beforeAll(async () => {
      api = await startNotificationsApiServer({ functionKey: KEY });
    });
    afterAll(() => api.close());

    it("posts with the key from HERALD_FUNCTION_KEY, then status shows the request", async () => {
      const env = { HERALD_ENDPOINT: api.endpoint, HERALD_FUNCTION_KEY: KEY };
      const sent = await herald(
        [
          "notify",
          "--tenant",
          TENANT,
          "--to",
          "alice@contoso.com",
          "--text",
          "hi",
          "--id",
          "cli-http-1",
        ],
        { cwd, env },
      );
      const shown = await herald(["status", "cli-http-1"], { cwd, env });
      const json = await herald(["status", "cli-http-1", "--json"], { cwd, env });

      expect(sent).toMatchObject({ code: 0, stdout: "cli-http-1\n" });
      expect(api.queue.sent.map((m) => m.applicationProperties?.requestId)).toContain("cli-http-1");
      expect(shown.code).toBe(0);
      expect(shown.stdout).toContain("cli-http-1: queued");
      expect(shown.stdout).toContain("0 recipients: 0 sent, 0 pending");
      expect(JSON.parse(json.stdout)).toMatchObject({ id: "cli-http-1", state: "queued" });
    });

    it("exits 1 with the status code when the key is wrong, and nothing is queued", async () => {
      const before = api.queue.sent.length;
      const { code, stderr } = await herald(
        [
          "notify",
          "--endpoint",
          api.endpoint,
          "--function-key",
          "wrong",
          "--tenant",
          TENANT,
          "--to",
          "alice@contoso.com",
          "--text",
          "hi",
        ],
        { cwd },
      );

      expect(code).toBe(1);
      expect(stderr).toMatch(/answered 401 .*function key/);
      expect(api.queue.sent.length).toBe(before);
    });

    it("status exits 1 for an id the endpoint does not know, also after --wait", async () => {
      const env = { HERALD_ENDPOINT: api.endpoint, HERALD_FUNCTION_KEY: KEY };
      const now = await herald(["status", "nobody-sent-this"], { cwd, env });
      const waited = await herald(["status", "nobody-sent-this", "--wait", "3"], { cwd, env });

      expect(now.code).toBe(1);
      expect(now.stderr).toContain(`${api.endpoint} has no notification request nobody-sent-this`);
      expect(waited.code).toBe(1);
      expect(waited.stderr).toContain("after 3 s");
    });
  });

  it("exits 1 when the endpoint cannot be reached", async () => {
    const gone = await startNotificationsApiServer();
    await gone.close();

    const sent = await herald(
      [
        "notify",
        "--endpoint",
        gone.endpoint,
        "--tenant",
        TENANT,
        "--to",
        "a@contoso.com",
        "--text",
        "hi",
      ],
      { cwd },
    );
    const status = await herald(["status", "x1", "--endpoint", gone.endpoint], { cwd });

    expect(sent.code).toBe(1);
    expect(sent.stderr).toMatch(/Could not reach .*ECONNREFUSED/);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(/Could not reach .*ECONNREFUSED/);
  });
});
