import { CatalogAppIds } from "../../shared/graph/catalog-app-ids";
import { GRAPH_INSTALL_PER_APP_PER_TENANT } from "../../shared/graph/graph-limits";
import type { GraphPort } from "../../shared/graph/graph-port";
import { memoryLogger } from "../../shared/logging";
import { EventOutbox } from "../../shared/notifications/event-outbox";
import { Pacer } from "../../shared/notifications/pacing";
import { type InstallStep, ProactiveInstaller } from "../../shared/notifications/proactive-install";
import { TenantWorkRunner } from "../../shared/notifications/tenant-work";
import type { DeliveryWork } from "../../shared/notifications/work-items";
import type { Delivery, DeliveryPatch, WriteResult } from "../../shared/store/delivery-ledger";

const TENANT = "8f6a1c2e-4b7d-4e0a-9c3f-5d2b7e9a1c40";

/**
 * The install queue under Graph's limit (30 installs/s per tenant): waiters beyond a pacing wait
 * get distinct, increasing slots, reserved for them, and use them when they come back without
 * asking again. Asking again all at once (a reschedule without a reservation) made every
 * waiter re-run its step each second: work quadratic in the number of never-seen recipients.
 */
describe("proactive install slots", () => {
  function rig() {
    let now = Date.parse("2026-12-01T09:00:00Z");
    const installs: number[] = [];
    const graph: Pick<GraphPort, "installAppForUser" | "findAppByExternalId" | "getUser"> = {
      installAppForUser: () => {
        installs.push(now);
        return Promise.resolve({ kind: "installed" });
      },
      findAppByExternalId: () => Promise.resolve({ kind: "found", catalogAppId: "catalog-1" }),
      getUser: () => Promise.reject(new Error("not asked: recipients are AAD ids")),
    };
    const port = graph as GraphPort;
    const written = (row: Delivery, patch: DeliveryPatch): Promise<WriteResult> =>
      Promise.resolve({ kind: "written", row: { ...row, ...patch, etag: `${row.etag}+` } });
    const sleep = (ms: number) => {
      now += ms;
      return Promise.resolve();
    };
    const installer = new ProactiveInstaller({
      graph: () => port,
      catalog: () => new CatalogAppIds(port, { teamsAppId: "app" }),
      users: {
        findByAadObjectId: () => Promise.resolve(undefined),
        upsert: () => Promise.reject(new Error("not reached")),
        tenantServiceUrl: () => Promise.resolve(undefined),
      },
      ledger: { update: written, guarded: (row, _person, patch) => written(row, patch) },
      welcomes: { noteHeraldInstall: () => Promise.resolve() },
      connector: () => {
        throw new Error("not reached");
      },
      graphWork: new TenantWorkRunner({
        pacer: new Pacer({
          perTenant: [GRAPH_INSTALL_PER_APP_PER_TENANT],
          perConversation: [],
          now: () => now,
        }),
        maxWaitMs: 1_000,
        clock: () => new Date(now),
        sleep,
      }),
      teamsWork: new TenantWorkRunner({
        pacer: undefined,
        maxWaitMs: 1_000,
        clock: () => new Date(now),
        sleep,
      }),
      policy: { maxAttempts: 6, random: () => 0 },
      outbox: EventOutbox.disabled(),
      clock: () => new Date(now),
    });
    const row = (i: number): Delivery => ({
      tenantId: TENANT,
      requestId: "r1",
      recipientKey: `aadObjectId:${i}`,
      recipient: { aadObjectId: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}` },
      state: "pending",
      attempts: 0,
      createdAt: "",
      updatedAt: "",
      etag: "e",
    });
    const work = (i: number, installSlotAt?: Date): DeliveryWork => ({
      requestId: "r1",
      tenantId: TENANT,
      recipient: row(i).recipient,
      attempt: 1,
      ...(installSlotAt !== undefined ? { installSlotAt: installSlotAt.toISOString() } : {}),
    });
    return {
      installer,
      installs,
      row,
      work,
      at: () => now,
      set: (t: number) => {
        now = t;
      },
    };
  }

  it("gives waiters distinct, increasing reserved slots, which they use without asking again", async () => {
    const r = rig();
    const start = r.at();
    const log = memoryLogger();
    const steps: InstallStep[] = [];
    for (let i = 0; i < 100; i++) {
      r.set(start); // all at once, as a fan-out's deliveries arrive
      steps.push(await r.installer.advance(r.work(i), r.row(i), log));
    }
    const later = steps.flatMap((s, i) =>
      s.kind === "later" && s.installSlotAt !== undefined ? [{ i, at: s.installSlotAt }] : [],
    );
    // About one second's worth installed at once (waiting under a second), the rest queued.
    expect(r.installs.length).toBeGreaterThanOrEqual(25);
    expect(r.installs.length + later.length).toBe(100);
    const slots = later.map((l) => l.at.getTime());
    expect(new Set(slots).size).toBe(slots.length);
    expect([...slots].sort((a, b) => a - b)).toEqual(slots);
    // The last of 100 is about 100/30 s out: the queue is as long as Graph's limit makes it.
    expect(slots.at(-1)! - start).toBeGreaterThan(2_500);

    const before = r.installs.length;
    for (const { i, at } of later) {
      r.set(at.getTime());
      const step = await r.installer.advance(r.work(i, at), r.row(i), log);
      expect(step.kind).toBe("later"); // installed; now waiting for the chat
      if (step.kind === "later") expect(step.installSlotAt).toBeUndefined();
    }
    expect(r.installs.length - before).toBe(later.length);
    // Never more than 30 in any one second.
    const times = [...r.installs].sort((a, b) => a - b);
    for (let k = 30; k < times.length; k++)
      expect(times[k]! - times[k - 30]!).toBeGreaterThan(1_000);
  });
});
