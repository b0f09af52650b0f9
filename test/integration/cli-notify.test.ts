import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { run } from "../../shared/cli/cli";
import { requestMessageId } from "../../shared/client/transport";
import type { NotificationRequest } from "../../shared/notifications/schema";
import { LocalQueue, type ReceivedMessage } from "../../shared/queue/local-queue";
import type { SimUser } from "../simulator";
import {
  type NotificationsApiServer,
  startNotificationsApiServer,
} from "../support/notifications-api-server";
import { NotificationsHarness } from "./notifications-harness";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const KEY = "cli-function-key";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The CLI in-process; stderr can pose as a terminal to show the progress bar. `--wait` runs on
 * a virtual clock that only its sleeps move, and `whileWaiting` stands for the time passing
 * (the test delivers what Herald would in the meantime): no test depends on the wall clock.
 */
async function herald(
  args: string[],
  options: {
    cwd: string;
    env?: NodeJS.ProcessEnv;
    tty?: boolean;
    whileWaiting?: () => Promise<unknown>;
  },
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  let clock = 0;
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
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
      await options.whileWaiting?.();
    },
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

  function received(): ReceivedMessage[] {
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
        `Sent notification ${id} to local queue "notifications" in ${join(cwd, ".data", "queue", "broker.db")} (npm start drains it); not accepted by Herald yet`,
      );
      expect(stderr).toContain(`herald status ${id} --tenant ${TENANT} --wait`);
      expect(stderr).not.toContain("Queued");
      const [message, ...rest] = received();
      expect(rest).toHaveLength(0);
      expect((message!.body as { id: string }).id).toBe(id);
      expect(message!.messageId).toBe(requestMessageId(message!.body as NotificationRequest));
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
      const [message] = received();
      expect((message!.body as { id: string }).id).toBe("approval-7");
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
      const ids = new LocalQueue({ directory: other })
        .receive(10)
        .map((m) => (m.body as { id: string }).id);
      expect(ids.sort()).toEqual([byFlag.stdout.trim(), byEnv.stdout.trim()].sort());
      expect(received()).toHaveLength(0);
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
      expect(stderr).toContain("Sent 3 notifications to local queue");
      expect(stderr).toContain("not accepted by Herald yet");
      expect(
        received()
          .map((m) => (m.body as { id: string }).id)
          .sort(),
      ).toEqual([...ids].sort());
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
      expect(received()).toHaveLength(0);
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
      expect(
        received()
          .map((m) => (m.body as { id: string }).id)
          .sort(),
      ).toEqual(["a", "c", "d"]);
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
      expect(received()[0]!.body).toMatchObject({ id: "t1", tenantId: TENANT });
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
      expect(sent.stderr).toContain("Herald accepted notification cli-http-1");
      expect(api.queue.sent.map((m) => m.applicationProperties?.requestId)).toContain("cli-http-1");
      expect(shown.code).toBe(6);
      expect(shown.stdout).toContain("cli-http-1: queued (not final)");
      expect(shown.stdout).toContain(
        "0 recipients (of 1 expected): 0 sent, 0 duplicate, 0 pending",
      );
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

    it("status with no endpoint asks npm start on the port PORT names, as npm start listens there", async () => {
      const port = new URL(api.endpoint).port;
      const env = { PORT: port, HERALD_FUNCTION_KEY: KEY };
      const asked = await herald(["status", "nobody-sent-this"], { cwd, env });

      expect(asked.code).toBe(1);
      expect(asked.stderr).toContain(`http://127.0.0.1:${port} has no notification request`);
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

describe("herald's exit codes say whether everyone was reached", () => {
  let h: NotificationsHarness;
  let api: NotificationsApiServer;
  let cwd: string;
  let env: NodeJS.ProcessEnv;
  let tenant: string;

  beforeAll(async () => {
    h = await NotificationsHarness.start();
    api = await startNotificationsApiServer({
      services: { notifications: h.services, queue: h.queue },
    });
    tenant = h.sim.tenantId;
    env = { HERALD_ENDPOINT: api.endpoint };
  });
  afterAll(async () => {
    await api.close();
    await h.close();
  });
  beforeEach(() => {
    cwd = mkdtempSync(join(tmpdir(), "herald-cli-exit-"));
    h.sim.reset();
    h.queue.takeAll();
  });
  afterEach(() => rmSync(cwd, { recursive: true, force: true }));

  async function knownUser(): Promise<SimUser> {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    return user;
  }

  function received(user: SimUser): string[] {
    return h.sim.messagesToUser(user).map((a) => String(a.activity.text));
  }

  /** Herald working while the CLI waits: everything queued is delivered. */
  const deliver = () => h.drain();

  function notify(id: string, to: string[], text: string): Promise<Run> {
    return herald(
      ["notify", "--tenant", tenant, ...to.flatMap((t) => ["--to", t]), "--text", text, "--id", id],
      { cwd, env },
    );
  }

  it("exits 4 with the conflict message when the id is taken with different content over HTTP, and delivers nothing of it", async () => {
    const user = await knownUser();
    await notify("exit-conflict", [user.id], "the first text");
    await deliver();

    const again = await notify("exit-conflict", [user.id], "a new text");
    await deliver();

    expect(again.code).toBe(4);
    expect(again.stdout).toBe("");
    expect(again.stderr).toBe(
      "herald: Request id exit-conflict is already used in this tenant by a request with different content: nothing of it was queued. Send it again with a new id.\n",
    );
    expect(received(user)).toEqual(["the first text"]);
  });

  it("accepts the same notification sent again under its id (exit 0) and delivers it once", async () => {
    const user = await knownUser();
    await notify("exit-replay", [user.id], "once");
    const again = await notify("exit-replay", [user.id], "once");
    await deliver();

    expect(again.code).toBe(0);
    expect(received(user)).toEqual(["once"]);
  });

  it("exits 4 for a bulk file over HTTP with a conflicting line, names the line, and sends the others", async () => {
    const user = await knownUser();
    await notify("exit-bulk-taken", [user.id], "the first text");
    const lines = [
      { id: "exit-bulk-new", text: "new" },
      { id: "exit-bulk-taken", text: "not the first text" },
    ].map(({ id, text }) =>
      JSON.stringify({
        id,
        tenantId: tenant,
        recipients: [{ teamsUserId: user.id }],
        message: { text },
      }),
    );
    writeFileSync(join(cwd, "requests.jsonl"), lines.join("\n"));

    const sent = await herald(["notify", "--file", "requests.jsonl"], { cwd, env });
    await deliver();

    expect(sent.code).toBe(4);
    expect(sent.stdout).toBe("exit-bulk-new\n");
    expect(sent.stderr).toContain("Refused as conflicts, nothing of them sent: line 2.");
    expect(received(user).sort()).toEqual(["new", "the first text"]);
  });

  it("status asks for --tenant when several tenants use the id, and finds each with it", async () => {
    const user = await knownUser();
    const other = "0b7f3c52-1d2e-4f6a-8b9c-0d1e2f3a4b5c";
    await notify("exit-two-tenants", [user.id], "tenant one");
    await herald(
      [
        "notify",
        "--tenant",
        other,
        "--to",
        "x@fabrikam.com",
        "--text",
        "tenant two",
        "--id",
        "exit-two-tenants",
      ],
      { cwd, env },
    );

    const unnamed = await herald(["status", "exit-two-tenants"], { cwd, env });
    const named = await herald(["status", "exit-two-tenants", "--tenant", other, "--json"], {
      cwd,
      env,
    });

    expect(unnamed.code).toBe(2);
    expect(unnamed.stderr).toContain(
      "herald: several tenants use the id exit-two-tenants: name one with --tenant <tenantId>",
    );
    expect(JSON.parse(named.stdout)).toMatchObject({ id: "exit-two-tenants", tenantId: other });
  });

  it("status exits 6 for a request that is not final yet, and says how to wait", async () => {
    const user = await knownUser();
    await notify("exit-unfinished", [user.id], "soon");

    const shown = await herald(["status", "exit-unfinished", "--tenant", tenant], { cwd, env });

    expect(shown.code).toBe(6);
    expect(shown.stdout).toContain("exit-unfinished: queued (not final)");
    expect(shown.stderr).toContain(
      `herald: exit-unfinished is queued, not final yet; wait for it with: herald status exit-unfinished --tenant ${tenant} --wait`,
    );
  });

  it("status --wait exits 0 once every recipient was sent the notification", async () => {
    const user = await knownUser();
    await notify("exit-delivered", [user.id], "all good");

    const shown = await herald(["status", "exit-delivered", "--tenant", tenant, "--wait"], {
      cwd,
      env,
      whileWaiting: deliver,
    });

    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("exit-delivered: completed\n");
    expect(shown.stdout).toContain("1 recipient: 1 sent, 0 duplicate, 0 pending, 0 unreachable");
    expect(shown.stdout).toContain("every recipient was sent the notification");
    expect(received(user)).toEqual(["all good"]);
  });

  it("status --wait exits 5 when a recipient is unreachable, and prints each recipient's state", async () => {
    const user = await knownUser();
    await notify("exit-partly", [user.id, "nobody-herald-saw@contoso.com"], "some of you");

    const shown = await herald(["status", "exit-partly", "--tenant", tenant, "--wait", "30"], {
      cwd,
      env,
      whileWaiting: deliver,
    });

    expect(shown.code).toBe(5);
    expect(shown.stdout).toContain("exit-partly: completed\n");
    expect(shown.stdout).toContain("2 recipients: 1 sent, 0 duplicate, 0 pending, 1 unreachable");
    expect(shown.stdout).toMatch(/\n {2}sent +29:/);
    expect(shown.stdout).toMatch(/\n {2}unreachable +nobody-herald-saw@contoso\.com/);
    expect(shown.stderr).toContain(
      "herald: exit-partly is completed: not everyone was reached (1 unreachable)",
    );
  });

  it("status exits 5 when every recipient was unreachable, although the request is completed", async () => {
    await notify("exit-nobody", ["ghost@contoso.com"], "anyone?");
    await deliver();

    const shown = await herald(["status", "exit-nobody", "--tenant", tenant], { cwd, env });

    expect(shown.code).toBe(5);
    expect(shown.stdout).toContain("exit-nobody: completed\n");
    expect(shown.stdout).toContain("not everyone was reached");
  });

  it("status --wait exits 6 when the request is still not final at the end of the wait", async () => {
    const user = await knownUser();
    await notify("exit-slow", [user.id], "later");

    const shown = await herald(["status", "exit-slow", "--tenant", tenant, "--wait", "5"], {
      cwd,
      env,
    });

    expect(shown.code).toBe(6);
    expect(shown.stderr).toContain("herald: exit-slow is still queued after 5 s (not final)");
  });

  it("status --wait shows a progress bar of final recipients on a terminal, and plain lines otherwise", async () => {
    const user = await knownUser();
    const args = (id: string) => ["status", id, "--tenant", tenant, "--wait"];

    await notify("exit-bar", [user.id], "watch this");
    const onTerminal = await herald(args("exit-bar"), {
      cwd,
      env,
      tty: true,
      whileWaiting: deliver,
    });
    await notify("exit-lines", [user.id], "and this");
    const piped = await herald(args("exit-lines"), { cwd, env, whileWaiting: deliver });

    expect(onTerminal.code).toBe(0);
    expect(onTerminal.stderr).toContain("Waiting |");
    expect(onTerminal.stderr).toContain("1/1 recipients final | completed");
    expect(piped.code).toBe(0);
    expect(piped.stderr).not.toContain("\u001b[");
    expect(piped.stderr).toContain("Waiting for exit-lines: queued, 0/1 recipients final\n");
    expect(piped.stderr).toContain("Waiting for exit-lines: completed, 1/1 recipients final\n");
  });

  it("notify --wait over HTTP waits for the request to be final and exits with its status code", async () => {
    const user = await knownUser();

    const sent = await herald(
      [
        "notify",
        "--tenant",
        tenant,
        "--to",
        user.id,
        "--to",
        "stranger@contoso.com",
        "--text",
        "wait for it",
        "--id",
        "exit-notify-wait",
        "--wait",
      ],
      { cwd, env, whileWaiting: deliver },
    );

    expect(sent.code).toBe(5);
    expect(sent.stdout).toContain("exit-notify-wait\nexit-notify-wait: completed\n");
    expect(sent.stdout).toMatch(/unreachable +stranger@contoso\.com/);
    expect(received(user)).toEqual(["wait for it"]);
  });

  /** Herald taking the local queue's messages, as npm start does, then their work. */
  function takeFrom(queue: LocalQueue): () => Promise<void> {
    return async () => {
      for (const message of queue.receive(10)) {
        await h.deliver({ body: message.body, messageId: message.messageId });
        queue.complete(message);
      }
      await h.drain();
    };
  }

  function notifyByQueue(id: string, to: string, text: string, queue: LocalQueue): Promise<Run> {
    return herald(
      [
        "notify",
        "--queue-dir",
        ".data/queue",
        "--status-endpoint",
        api.endpoint,
        "--tenant",
        tenant,
        "--to",
        to,
        "--text",
        text,
        "--id",
        id,
        "--wait",
      ],
      { cwd, whileWaiting: takeFrom(queue) },
    );
  }

  it("notify --wait through the local queue says it is not accepted yet, then exits 0 once delivered", async () => {
    const user = await knownUser();
    const queue = new LocalQueue({ directory: join(cwd, ".data", "queue") });

    const sent = await notifyByQueue("exit-queue-new", user.id, "by queue", queue);

    expect(sent.code).toBe(0);
    expect(sent.stderr).toContain("Sent notification exit-queue-new to local queue");
    expect(sent.stderr).toContain("not accepted by Herald yet");
    expect(sent.stdout).toContain("exit-queue-new: completed\n");
    expect(received(user)).toEqual(["by queue"]);
  });

  it("notify --wait through the local queue asks Herald over HTTP when the id is taken, and exits 4 for a conflict without queueing it", async () => {
    const user = await knownUser();
    await notify("exit-queue-taken", [user.id], "the first text");
    await deliver();
    const queue = new LocalQueue({ directory: join(cwd, ".data", "queue") });

    const sent = await notifyByQueue("exit-queue-taken", user.id, "a new text", queue);

    expect(sent.code).toBe(4);
    expect(sent.stderr).toContain(
      `exit-queue-taken is already used in tenant ${tenant} (completed): asking Herald at ${api.endpoint}`,
    );
    expect(sent.stderr).toContain(
      "herald: Request id exit-queue-taken is already used in this tenant by a request with different content: nothing of it was queued.",
    );
    expect(queue.receive(10)).toHaveLength(0);
    expect(received(user)).toEqual(["the first text"]);
  });

  it("notify --wait through the local queue takes a resend of the same request as a replay: exit 0, one copy", async () => {
    const user = await knownUser();
    await notify("exit-queue-replay", [user.id], "same text");
    await deliver();
    const queue = new LocalQueue({ directory: join(cwd, ".data", "queue") });

    const sent = await notifyByQueue("exit-queue-replay", user.id, "same text", queue);

    expect(sent.code).toBe(0);
    expect(sent.stdout).toContain("exit-queue-replay: completed\n");
    expect(received(user)).toEqual(["same text"]);
  });
});
