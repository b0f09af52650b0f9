import {
  type ClaimHolders,
  localProcessHolders,
  processIdentity,
  remoteHolders,
} from "../../shared/notifications/claim-holders";
import { DeliveryClaims } from "../../shared/notifications/delivery-claims";
import type { QueueMessageInfo } from "../../shared/notifications/work-items";
import type { Delivery } from "../../shared/store/delivery-ledger";
import { deadProcessIdentity } from "../support/dead-process";

const NOW = Date.parse("2026-12-01T09:00:00Z");
const LEASE_MS = 120_000;
const SESSION = "8f6a1c2e-4b7d-4e0a-9c3f-5d2b7e9a1c40";

function info(messageId: string, deliveryCount = 1, sessionId?: string): QueueMessageInfo {
  return { messageId, deliveryCount, sessionId, applicationProperties: {} };
}

/** A row `sending` under a claim of message `m-1`, made `ageMs` ago by `holder` in `session`. */
function claimed(holder: string, session?: string, ageMs = 1_000): Delivery {
  return {
    tenantId: SESSION,
    requestId: "r1",
    recipientKey: "teamsUserId:29:a",
    recipient: { teamsUserId: "29:a" },
    state: "sending",
    attempts: 1,
    claimedBy: "m-1#1",
    claimHolder: holder,
    claimSession: session,
    claimExpiresAt: new Date(NOW - ageMs + LEASE_MS).toISOString(),
    createdAt: "",
    updatedAt: "",
    etag: "e",
  };
}

function claims(holders: ClaimHolders): DeliveryClaims {
  return new DeliveryClaims({ holders, leaseMs: LEASE_MS, clock: () => new Date(NOW) });
}

describe("delivery claims", () => {
  const here = localProcessHolders();
  /** A live process on this machine that is not this one (the one that started the tests). */
  const other = processIdentity(process.ppid);

  it("lets a live process's claim made in another session stand, looking again when it is twice as old", () => {
    expect(
      claims(here).standing(claimed(other, "another-session", 5_000), info("m-2", 1, SESSION)),
    ).toEqual({
      kind: "held",
      until: new Date(NOW - 5_000 + LEASE_MS),
      recheckAt: new Date(NOW + 5_000),
    });
  });

  it("looks at a young claim again a second later, and at an old one just after it expires", () => {
    const young = claims(here).standing(claimed(other, undefined, 10), info("m-2"));
    const old = claims(here).standing(claimed(other, undefined, LEASE_MS - 100), info("m-2"));
    expect(young.kind === "held" && young.recheckAt).toEqual(new Date(NOW + 1_000));
    expect(old.kind === "held" && old.recheckAt).toEqual(new Date(NOW + 100 + 1_000));
  });

  it("lets this process's own claim for another message stand (it may still be sending)", () => {
    expect(claims(here).standing(claimed(here.self, SESSION), info("m-2", 1, SESSION)).kind).toBe(
      "held",
    );
  });

  it("frees an expired claim, and an earlier delivery of the same message as read", () => {
    const c = claims(remoteHolders());
    expect(c.standing(claimed(other, undefined, LEASE_MS + 1), info("m-2")).kind).toBe("free");
    expect(c.standing(claimed(other), info("m-1", 2)).kind).toBe("free");
  });

  it("frees at once a claim whose process has died on this machine, even one that just won a race", async () => {
    const dead = await deadProcessIdentity();
    expect(here.isGone(dead)).toBe(true);
    expect(here.isGone(other)).toBe(false);
    expect(claims(here).standing(claimed(dead, "another-session"), info("m-2")).kind).toBe("free");
    expect(claims(here).standing(claimed(dead), info("m-2"), "lost-race").kind).toBe("free");
  });

  it("frees at once another process's claim made in the session this invocation now holds", () => {
    expect(
      claims(remoteHolders()).standing(claimed(other, SESSION), info("m-2", 1, SESSION)).kind,
    ).toBe("free");
  });

  it("after a lost race, frees neither an earlier delivery of the message nor a lost session's claim", () => {
    const c = claims(remoteHolders());
    expect(c.standing(claimed(other), info("m-1", 2), "lost-race").kind).toBe("held");
    expect(c.standing(claimed(other, SESSION), info("m-2", 1, SESSION), "lost-race").kind).toBe(
      "held",
    );
  });

  it("never calls a holder gone that it cannot check: another machine's, or any in Azure", async () => {
    const dead = await deadProcessIdentity();
    expect(remoteHolders().isGone(dead)).toBe(false);
    expect(here.isGone(dead.replace(/^[^/]+/, "another-host"))).toBe(false);
    expect(here.isGone("not an id")).toBe(false);
  });
});
