import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { run } from "../../shared/cli/cli";
import { NotificationClient } from "../../shared/client/notification-client";
import {
  type NotificationsApiServer,
  startNotificationsApiServer,
} from "../support/notifications-api-server";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const KEY = "cli-function-key";

/** The CLI in-process against Herald's HTTP handlers. */
async function herald(args: string[], cwd: string) {
  let stdout = "";
  let stderr = "";
  const code = await run(args, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk), isTTY: false, columns: 100 },
    env: { HERALD_FUNCTION_KEY: KEY },
    cwd,
    clientOptions: { httpMaxTries: 1 },
  });
  return { code, stdout, stderr };
}

describe("herald update and herald recall", () => {
  let api: NotificationsApiServer;
  let cwd: string;
  let client: NotificationClient;

  beforeAll(async () => {
    api = await startNotificationsApiServer({ functionKey: KEY });
    client = new NotificationClient({ endpoint: api.endpoint, functionKey: KEY });
    cwd = mkdtempSync(join(tmpdir(), "herald-cli-changes-"));
  });
  afterAll(async () => {
    rmSync(cwd, { recursive: true, force: true });
    await api.close();
  });

  const sent = () =>
    client.send({
      tenantId: TENANT,
      recipients: [{ teamsUserId: "29:1abc" }],
      message: { text: "Maintenance at 10:00" },
    });

  it("updates a request's text over the endpoint and prints its new revision", async () => {
    const id = await sent();

    const result = await herald(
      [
        "update",
        id,
        "--tenant",
        TENANT,
        "--text",
        "Maintenance at 11:00",
        "--endpoint",
        api.endpoint,
      ],
      cwd,
    );

    expect(result).toMatchObject({ code: 0, stdout: `Updated ${id} (revision 2)\n` });
  });

  it("recalls a request, and exits 4 with the reason for an update after it", async () => {
    const id = await sent();
    expect(
      (await herald(["recall", id, "--tenant", TENANT, "--endpoint", api.endpoint], cwd)).code,
    ).toBe(0);

    const late = await herald(
      ["update", id, "--tenant", TENANT, "--summary", "late", "--endpoint", api.endpoint],
      cwd,
    );

    expect(late.code).toBe(4);
    expect(late.stderr).toContain("recalled");
  });

  it("exits 7 for an id the tenant does not have", async () => {
    const result = await herald(
      ["recall", "no-such-id", "--tenant", TENANT, "--endpoint", api.endpoint],
      cwd,
    );

    expect(result.code).toBe(7);
  });

  it("exits 2 when an update names nothing to change", async () => {
    const result = await herald(["update", "some-id", "--tenant", TENANT], cwd);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--text, --card, --summary or --not-before");
  });
});
