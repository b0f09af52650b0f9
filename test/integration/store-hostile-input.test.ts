import fc from "fast-check";

import { NotificationRequestStore } from "../../shared/store/notification-requests";
import { TableFactory } from "../../shared/store/table-factory";
import { TeamStore } from "../../shared/store/teams";
import { type UserObservation, UserReferenceStore } from "../../shared/store/user-references";
import { testConfig } from "../support/test-config";

const tenantId = "4d2c1b0a-9e8f-4a7b-8c6d-5e4f3a2b1c0d";
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

function observation(overrides: Partial<UserObservation> = {}): UserObservation {
  return {
    tenantId,
    teamsUserId: "29:1-hostile",
    name: "Ada",
    serviceUrl: "https://smba.trafficmanager.net/emea/",
    learnedFrom: "personal",
    ...overrides,
  };
}

describe("stores under hostile input (Azurite)", () => {
  const tables = new TableFactory(testConfig());
  const users = new UserReferenceStore(tables);
  const teams = new TeamStore(tables);
  const requests = new NotificationRequestStore(tables);

  it("stores and finds users whose ids and UPNs are long, non-ASCII or hold lone surrogates", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: codeUnit, minLength: 1, maxLength: 600 }),
        fc.string({ unit: "binary", minLength: 1, maxLength: 200 }).filter((s) => !/[\s@]/.test(s)),
        async (id, local) => {
          const teamsUserId = `29:${id}`;
          const upn = `${local}@contoso.com`;
          await users.upsert(observation({ teamsUserId, userPrincipalName: upn }));
          await expect(users.findByTeamsUserId(tenantId, teamsUserId)).resolves.toMatchObject({
            teamsUserId,
          });
          const byUpn = await users.findByUserPrincipalName(tenantId, upn);
          if (upn.length <= 256) expect(byUpn?.teamsUserId).toBe(teamsUserId);
        },
      ),
      { numRuns: 15 },
    );
  });

  it("cuts a 100,000-character display name and team name to what a Table property holds", async () => {
    const huge = "名".repeat(100_000);
    const stored = await users.upsert(observation({ teamsUserId: "29:1-long-name", name: huge }));
    expect(stored.reference.name?.length).toBeLessThanOrEqual(256);
    const team = await teams.upsert({
      tenantId,
      teamId: "19:long-name@thread.tacv2",
      name: huge,
      serviceUrl: "https://smba.trafficmanager.net/emea/",
    });
    expect(team.name?.length).toBeLessThanOrEqual(256);
  });

  it("records a rejected request whose error list is huge, bounded", async () => {
    const errors = Array.from({ length: 5_000 }, (_, i) => ({
      path: `recipients.${i}.${"k".repeat(5_000)}`,
      message: "x".repeat(5_000),
    }));
    const { request } = await requests.create({
      id: `rejected-huge-${Date.now()}`,
      tenantId,
      state: "rejected",
      source: "queue",
      errors,
    });
    expect(request.errors!.length).toBeLessThanOrEqual(51);
    expect(request.errors!.at(-1)?.message).toMatch(/more errors/);
  });

  it("stores and reads back an 80 KB message (more than one Table property holds)", async () => {
    const id = `big-message-${Date.now()}`;
    // ASCII: Azurite (not Azure) garbles a multi-byte character that straddles 64 KiB of a body.
    const text = "x".repeat(79_000);
    await requests.create({ id, state: "queued", source: "queue", tenantId, message: { text } });
    await expect(requests.get({ tenantId, id })).resolves.toMatchObject({ message: { text } });
  });

  describe("recovery", () => {
    it("keeps a service URL learned from a newer activity when an older roster observation arrives late", async () => {
      const teamsUserId = "29:1-late-roster";
      await users.upsert(
        observation({
          teamsUserId,
          serviceUrl: "https://smba.trafficmanager.net/amer/",
          observedAt: new Date("2026-12-01T10:00:00Z"),
        }),
      );
      await users.upsertMany([
        observation({
          teamsUserId,
          learnedFrom: "roster",
          serviceUrl: "https://smba.trafficmanager.net/emea/",
          observedAt: new Date("2026-12-01T09:00:00Z"),
        }),
      ]);
      await expect(users.findByTeamsUserId(tenantId, teamsUserId)).resolves.toMatchObject({
        serviceUrl: "https://smba.trafficmanager.net/amer/",
      });
    });

    it("keeps the newest of two observations of one user in one roster page", async () => {
      const teamsUserId = "29:1-two-in-page";
      await users.upsertMany([
        observation({
          teamsUserId,
          learnedFrom: "roster",
          serviceUrl: "https://smba.trafficmanager.net/amer/",
          observedAt: new Date("2026-12-01T10:00:00Z"),
        }),
        observation({
          teamsUserId,
          learnedFrom: "roster",
          serviceUrl: "https://smba.trafficmanager.net/emea/",
          observedAt: new Date("2026-12-01T09:00:00Z"),
        }),
      ]);
      await expect(users.findByTeamsUserId(tenantId, teamsUserId)).resolves.toMatchObject({
        serviceUrl: "https://smba.trafficmanager.net/amer/",
      });
    });

    it("makes a user unreachable by BotNotInConversationRoster active again when a roster sync sees them", async () => {
      const teamsUserId = "29:1-readded";
      await users.upsert(observation({ teamsUserId, learnedFrom: "team" }));
      await users.markStatus(tenantId, teamsUserId, "unreachable", "BotNotInConversationRoster");
      await users.upsertMany([observation({ teamsUserId, learnedFrom: "roster" })]);
      await expect(users.findByTeamsUserId(tenantId, teamsUserId)).resolves.toMatchObject({
        status: "active",
      });
    });

    it("keeps a user who blocked the bot unreachable when a roster sync sees them", async () => {
      const teamsUserId = "29:1-blocked";
      await users.upsert(observation({ teamsUserId, learnedFrom: "team" }));
      await users.markStatus(tenantId, teamsUserId, "unreachable", "ConversationBlockedByUser");
      await users.upsertMany([observation({ teamsUserId, learnedFrom: "roster" })]);
      await expect(users.findByTeamsUserId(tenantId, teamsUserId)).resolves.toMatchObject({
        status: "unreachable",
      });
    });
  });
});
