import type { TeamsConnector } from "../../shared/connector/teams-connector";
import type { CatalogAppIds } from "../../shared/graph/catalog-app-ids";
import { GRAPH_INSTALL_PER_APP_PER_TENANT } from "../../shared/graph/graph-limits";
import type { GraphPort } from "../../shared/graph/graph-port";
import { memoryLogger } from "../../shared/logging";
import { EventOutbox } from "../../shared/notifications/event-outbox";
import { Pacer } from "../../shared/notifications/pacing";
import {
  type ProactiveInstallDependencies,
  ProactiveInstaller,
} from "../../shared/notifications/proactive-install";
import { TenantWorkRunner } from "../../shared/notifications/tenant-work";
import type { DeliveryWork } from "../../shared/notifications/work-items";
import type { Delivery, DeliveryPatch, WriteResult } from "../../shared/store/delivery-ledger";
import type { UserReference } from "../../shared/store/user-references";

const TENANT = "0b5e2f1a-6c3d-4e8f-9a1b-2c3d4e5f6a7b";
const USER = "5d1c9e3a-7b2f-4a6e-8c0d-1e2f3a4b5c6d";

const work: DeliveryWork = {
  requestId: "req-1",
  tenantId: TENANT,
  recipient: { aadObjectId: USER },
  attempt: 1,
};

const row: Delivery = {
  tenantId: TENANT,
  requestId: "req-1",
  recipientKey: `aadObjectId#${USER}`,
  recipient: { aadObjectId: USER },
  state: "pending",
  attempts: 0,
  createdAt: "2026-12-01T00:00:00.000Z",
  updatedAt: "2026-12-01T00:00:00.000Z",
  etag: "e0",
};

const reference: UserReference = {
  tenantId: TENANT,
  teamsUserId: "29:installed",
  aadObjectId: USER,
  serviceUrl: "https://smba.trafficmanager.net/amer/",
  conversationId: "a:1on1",
  learnedFrom: "personal",
  status: "active",
  createdAt: "2026-12-01T00:00:00.000Z",
  updatedAt: "2026-12-01T00:00:00.000Z",
};

/**
 * An installer over fakes for a user named by AAD id (no lookup before the install): by the
 * time the chat is looked for, the bot has recorded the install's conversationUpdate.
 */
function installer(graphPacer: Pacer) {
  const written = (current: Delivery, patch: DeliveryPatch): Promise<WriteResult> =>
    Promise.resolve({ kind: "written", row: { ...current, ...patch, etag: `${current.etag}'` } });
  const update = jest.fn(written);
  const guarded = jest.fn((current: Delivery, _person: string, patch: DeliveryPatch) =>
    written(current, patch),
  );
  const noteHeraldInstall = jest.fn(() => Promise.resolve());
  const installAppForUser = jest.fn(() => Promise.resolve({ kind: "installed" as const }));
  const graph = { installAppForUser } as unknown as GraphPort;
  const catalog = {
    resolve: () => Promise.resolve({ kind: "found", catalogAppId: "catalog-app" }),
  } as unknown as CatalogAppIds;
  const reserve = jest.spyOn(graphPacer, "reserve");
  const deps: ProactiveInstallDependencies = {
    graph: () => graph,
    catalog: () => catalog,
    users: {
      findByAadObjectId: jest.fn(() => Promise.resolve(reference)),
      upsert: jest.fn(),
      tenantServiceUrl: jest.fn(() => Promise.resolve(undefined)),
    },
    ledger: { update, guarded },
    welcomes: { noteHeraldInstall },
    connector: () => ({}) as TeamsConnector,
    graphWork: new TenantWorkRunner({
      pacer: graphPacer,
      maxWaitMs: 1_000,
      clock: () => new Date(),
      sleep: () => Promise.resolve(),
    }),
    teamsWork: new TenantWorkRunner({
      pacer: undefined,
      maxWaitMs: 1_000,
      clock: () => new Date(),
      sleep: () => Promise.resolve(),
    }),
    policy: { maxAttempts: 6, random: () => 0 },
    outbox: EventOutbox.disabled(),
    clock: () => new Date(),
  };
  return {
    installer: new ProactiveInstaller(deps),
    update,
    guarded,
    noteHeraldInstall,
    installAppForUser,
    reserve,
  };
}

const order = (fn: jest.Mock | jest.SpyInstance, call = 0) => fn.mock.invocationCallOrder[call]!;

describe("proactive install under Graph's install limit", () => {
  it("takes the install's pacing slot after its storage writes, right before Graph's call", async () => {
    const t = installer(
      new Pacer({ perTenant: [GRAPH_INSTALL_PER_APP_PER_TENANT], perConversation: [] }),
    );
    const step = await t.installer.advance(work, row, memoryLogger());

    expect(step.kind).toBe("ready");
    expect(t.installAppForUser).toHaveBeenCalledTimes(1);
    // Writes between the slot and the call would reach Graph with their jitter: paced installs
    // bunch into one of Graph's 1 s windows and some are answered 429.
    expect(order(t.reserve)).toBeGreaterThan(order(t.guarded));
    expect(order(t.reserve)).toBeGreaterThan(order(t.noteHeraldInstall));
    expect(order(t.reserve)).toBeLessThan(order(t.installAppForUser));
    // The row moved to waiting-for-chat after the install, not before.
    expect(order(t.update)).toBeGreaterThan(order(t.installAppForUser));
  });

  it("defers an install whose slot is too far off without calling Graph, the welcome already noted", async () => {
    const pacer = new Pacer({ perTenant: [{ seconds: 60, limit: 1 }], perConversation: [] });
    pacer.reserve(`${TENANT}|install`); // the minute's one install is taken
    const t = installer(pacer);
    const step = await t.installer.advance(work, row, memoryLogger());

    // The next free slot is reserved for it: the work comes back for that slot.
    expect(step).toMatchObject({
      kind: "later",
      reason: "queued for an install slot under Microsoft Graph's limits",
    });
    expect(step.kind === "later" && step.installSlotAt).toBeInstanceOf(Date);
    expect(t.installAppForUser).not.toHaveBeenCalled();
    // The next attempt installs: the note its events need is there, and the row says so.
    expect(t.noteHeraldInstall).toHaveBeenCalledTimes(1);
    expect(step.row.state).toBe("installing");
  });
});
