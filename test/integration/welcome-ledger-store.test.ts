import { TableFactory } from "../../shared/store/table-factory";
import { WelcomeLedger, type WelcomeSubject } from "../../shared/store/welcome-ledger";
import { testConfig } from "../support/test-config";

const subject: WelcomeSubject = {
  scope: "personal",
  tenantId: "9b1a6c2e-7d3f-4a5b-8c9d-0e1f2a3b4c5d",
  teamsUserId: "29:1-ada",
};

describe("WelcomeLedger", () => {
  let now: Date;
  let ledger: WelcomeLedger;
  let tables: TableFactory;

  beforeEach(() => {
    now = new Date("2026-03-01T10:00:00Z");
    tables = new TableFactory(testConfig());
    ledger = new WelcomeLedger(tables, { leaseMs: 60_000, clock: () => now });
  });

  it("lets exactly one of many concurrent claimers send", async () => {
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => ledger.claim(subject)));
    expect(outcomes.filter((o) => o.kind === "claimed")).toHaveLength(1);
    expect(outcomes.filter((o) => o.kind === "busy")).toHaveLength(19);
  });

  it("answers sent, with the activity id, once the welcome is recorded", async () => {
    const first = await ledger.claim(subject);
    if (first.kind !== "claimed") throw new Error("expected a claim");
    await expect(
      ledger.complete(first.claim, { activityId: "act-1", conversationId: "a:1" }),
    ).resolves.toBe("completed");
    now = new Date(now.getTime() + 3_600_000);
    const again = await ledger.claim(subject);
    expect(again).toMatchObject({ kind: "sent", record: { activityId: "act-1", state: "sent" } });
    await expect(ledger.get(subject)).resolves.toMatchObject({
      sentAt: "2026-03-01T10:00:00.000Z",
    });
  });

  it("keeps a live claim busy and lets exactly one instance take it over after the lease", async () => {
    const dead = await ledger.claim(subject);
    expect(dead.kind).toBe("claimed");
    now = new Date(now.getTime() + 59_000);
    await expect(ledger.claim(subject)).resolves.toMatchObject({ kind: "busy" });
    now = new Date(now.getTime() + 2_000);
    const takers = await Promise.all(Array.from({ length: 10 }, () => ledger.claim(subject)));
    const won = takers.filter((o) => o.kind === "claimed");
    expect(won).toHaveLength(1);
    expect(won[0]).toMatchObject({ claim: { takenOver: true, attempt: 2 } });
  });

  it("tells the overtaken sender that its claim was lost", async () => {
    const slow = await ledger.claim(subject);
    now = new Date(now.getTime() + 61_000);
    const recovery = await ledger.claim(subject);
    if (slow.kind !== "claimed" || recovery.kind !== "claimed") throw new Error("expected claims");
    await expect(ledger.complete(recovery.claim, { conversationId: "a:1" })).resolves.toBe(
      "completed",
    );
    await expect(ledger.complete(slow.claim, { conversationId: "a:1" })).resolves.toBe("lost");
  });

  it("lets the next claim retry at once after a release", async () => {
    const first = await ledger.claim(subject);
    if (first.kind !== "claimed") throw new Error("expected a claim");
    await ledger.release(first.claim, "503 from Teams");
    const retry = await ledger.claim(subject);
    expect(retry).toMatchObject({ kind: "claimed", claim: { takenOver: true } });
  });

  it("keeps the personal and team welcomes of one id apart", async () => {
    await ledger.claim(subject);
    const team = await ledger.claim({
      scope: "team",
      tenantId: subject.tenantId,
      teamId: "29:1-ada",
    });
    expect(team.kind).toBe("claimed");
  });
});
