import { Pacer } from "../../shared/notifications/pacing";
import { TenantWorkRunner } from "../../shared/notifications/tenant-work";

const TENANT = "tenant-1";

/** A runner over a pacer of `limit` calls per second, on a clock the runner's sleeps move. */
function rig(limit: number) {
  let now = Date.parse("2026-12-01T09:00:00Z");
  const slept: number[] = [];
  const pacer = new Pacer({
    perTenant: [{ seconds: 1, limit }],
    perConversation: [],
    margin: 1,
    now: () => now,
  });
  const runner = new TenantWorkRunner({
    pacer,
    maxWaitMs: 1_000,
    clock: () => new Date(now),
    sleep: (ms) => {
      slept.push(ms);
      now += ms;
      return Promise.resolve();
    },
  });
  return {
    runner,
    slept,
    now: () => now,
    set: (t: number) => {
      now = t;
    },
  };
}

describe("TenantWorkRunner", () => {
  it("waits in the function for a slot that comes within the wait", async () => {
    const r = rig(2);
    expect(await r.runner.slot(TENANT)).toEqual({ kind: "go" });
    expect(await r.runner.slot(TENANT)).toEqual({ kind: "go" });
    expect(r.slept).toEqual([500]);
  });

  it("sends work whose slot is beyond the wait back for then, without sleeping or holding the slot", async () => {
    const r = rig(1);
    const start = r.now();
    expect(await r.runner.slot(TENANT)).toEqual({ kind: "go" });
    const second = await r.runner.slot(TENANT);
    const third = await r.runner.slot(TENANT);
    expect(second).toEqual({ kind: "later", at: new Date(start + 1_001) });
    // Not held: the next asker is told the same time.
    expect(third).toEqual(second);
    expect(r.slept).toEqual([]);
  });

  it("waits however long for a call that must follow one already made", async () => {
    const r = rig(1);
    await r.runner.slot(TENANT);
    const before = r.now();
    await r.runner.waitForSlot(TENANT);
    expect(r.now() - before).toBeGreaterThan(1_000);
  });

  it("holds a far slot for work that comes back for it, which then goes without asking again", async () => {
    const r = rig(1);
    const start = r.now();
    expect(await r.runner.reservedSlot(TENANT, undefined)).toEqual({ kind: "go" });
    const second = await r.runner.reservedSlot(TENANT, undefined);
    const third = await r.runner.reservedSlot(TENANT, undefined);
    expect(second).toEqual({ kind: "later", at: new Date(start + 1_001), reserved: true });
    expect(third).toEqual({ kind: "later", at: new Date(start + 2_002), reserved: true });

    const reserve = jest.spyOn(Pacer.prototype, "reserve");
    r.set(start + 1_001);
    expect(await r.runner.reservedSlot(TENANT, new Date(start + 1_001).toISOString())).toEqual({
      kind: "go",
    });
    expect(reserve).not.toHaveBeenCalled();
    reserve.mockRestore();
  });

  it("holds a call back right before it starts when earlier calls started bunched", async () => {
    const r = rig(2);
    const start = r.now();
    // Two calls whose slots were a second apart start together (their writes took different times).
    await r.runner.beforeCall(TENANT);
    await r.runner.beforeCall(TENANT);
    expect(r.slept).toEqual([]);
    // A third within the same second waits until the first start leaves the window (Teams'
    // second and the gate's 25 ms for calls that reach Teams late).
    await r.runner.beforeCall(TENANT);
    expect(r.now()).toBe(start + 1_026);
  });

  it("counts a call from when its request left, so the next second's call waits for that", async () => {
    const r = rig(2);
    const start = r.now();
    const first = await r.runner.beforeCall(TENANT);
    const second = await r.runner.beforeCall(TENANT);
    // Both requests waited 300 ms for a new connection before they left.
    r.set(start + 300);
    first.onWire?.();
    second.onWire?.();
    await r.runner.beforeCall(TENANT);
    expect(r.now()).toBe(start + 1_326);
  });

  it("lets everything go at once without a pacer", async () => {
    const runner = new TenantWorkRunner({
      pacer: undefined,
      maxWaitMs: 1_000,
      clock: () => new Date(),
      sleep: () => Promise.reject(new Error("no sleep without a pacer")),
    });
    expect(await runner.slot(TENANT)).toEqual({ kind: "go" });
    await runner.waitForSlot(TENANT);
    expect(await runner.reservedSlot(TENANT, undefined)).toEqual({ kind: "go" });
    await runner.beforeCall(TENANT);
  });
});
