import { TableFactory, TABLES } from "../../shared/store/table-factory";
import { type UserObservation, UserReferenceStore } from "../../shared/store/user-references";
import { testConfig } from "../support/test-config";

const tenantId = "9b1a6c2e-7d3f-4a5b-8c9d-0e1f2a3b4c5d";

function observation(overrides: Partial<UserObservation> = {}): UserObservation {
  return {
    tenantId,
    teamsUserId: "29:1-ada",
    aadObjectId: "6F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9",
    name: "Ada Lovelace",
    serviceUrl: "https://smba.example/emea/",
    learnedFrom: "personal",
    ...overrides,
  };
}

describe("UserReferenceStore", () => {
  let tables: TableFactory;
  let store: UserReferenceStore;

  beforeEach(() => {
    tables = new TableFactory(testConfig());
    store = new UserReferenceStore(tables);
  });

  describe("lookups", () => {
    it("finds a reference by Teams user id, AAD object id and UPN (any case)", async () => {
      await store.upsert(
        observation({ userPrincipalName: "Ada@Contoso.com", conversationId: "a:1" }),
      );
      const byId = await store.findByTeamsUserId(tenantId, "29:1-ada");
      expect(byId).toMatchObject({
        teamsUserId: "29:1-ada",
        aadObjectId: "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
        userPrincipalName: "Ada@Contoso.com",
        conversationId: "a:1",
        status: "active",
        learnedFrom: "personal",
      });
      await expect(
        store.findByAadObjectId(tenantId, "6f1e2d3c-4b5a-4978-8695-A4B3C2D1E0F9"),
      ).resolves.toEqual(byId);
      await expect(store.findByUserPrincipalName(tenantId, "ada@CONTOSO.com")).resolves.toEqual(
        byId,
      );
      await expect(store.findByUserPrincipalName(tenantId, "grace@contoso.com")).resolves.toBe(
        undefined,
      );
    });

    it("answers not found for a UPN that moved to another user, never the old owner", async () => {
      await store.upsert(observation({ userPrincipalName: "ada@contoso.com" }));
      await store.upsert(observation({ userPrincipalName: "ada.king@contoso.com" }));
      await expect(store.findByUserPrincipalName(tenantId, "ada@contoso.com")).resolves.toBe(
        undefined,
      );
      await expect(
        store.findByUserPrincipalName(tenantId, "ada.king@contoso.com"),
      ).resolves.toMatchObject({ teamsUserId: "29:1-ada" });
    });

    it("keeps tenants apart", async () => {
      await store.upsert(observation());
      await expect(
        store.findByTeamsUserId("00000000-0000-0000-0000-000000000001", "29:1-ada"),
      ).resolves.toBe(undefined);
    });

    it("keeps each lookup inside one partition of the Users and UserIndex tables", async () => {
      await store.upsert(observation({ userPrincipalName: "ada@contoso.com" }));
      const index = await tables.table(TABLES.userIndex);
      const rows = [];
      for await (const row of index.listEntities()) rows.push(row);
      expect(rows.map((r) => r.rowKey).sort()).toEqual([
        "aad|6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
        "upn|ada~40contoso.com",
      ]);
      expect(new Set(rows.map((r) => r.partitionKey))).toEqual(new Set([tenantId]));
    });
  });

  describe("the AAD index row's copy of the route (a notification's first try)", () => {
    const aad = "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    const firstTry = { read: "index-copy" } as const;

    it("gives the route the reference has, without names", async () => {
      await store.upsert(
        observation({ userPrincipalName: "ada@contoso.com", conversationId: "a:1" }),
      );

      const found = await store.findByAadObjectId(tenantId, aad, firstTry);

      const { createdAt: _created, updatedAt: _updated, ...route } = found ?? {};
      expect(route).toEqual({
        tenantId,
        teamsUserId: "29:1-ada",
        aadObjectId: aad,
        serviceUrl: "https://smba.example/emea/",
        conversationId: "a:1",
        learnedFrom: "personal",
        status: "active",
      });
    });

    it("follows a new 1:1 chat and a forgotten one", async () => {
      await store.upsert(observation());
      await store.setConversationId(tenantId, "29:1-ada", "a:2");
      const learned = await store.findByAadObjectId(tenantId, aad, firstTry);
      await store.setConversationId(tenantId, "29:1-ada", undefined);
      const forgotten = await store.findByAadObjectId(tenantId, aad, firstTry);

      expect([learned?.conversationId, forgotten?.conversationId]).toEqual(["a:2", undefined]);
    });

    it("no longer sends a first try by an AAD id to a user who now has another", async () => {
      const newer = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
      await store.upsert(observation({ conversationId: "a:1" }));
      await store.upsert(observation({ aadObjectId: newer, conversationId: "a:1" }));

      await expect(store.findByAadObjectId(tenantId, aad, firstTry)).resolves.toBe(undefined);
      await expect(store.findByAadObjectId(tenantId, aad)).resolves.toBe(undefined);
      await expect(store.findByAadObjectId(tenantId, newer, firstTry)).resolves.toMatchObject({
        teamsUserId: "29:1-ada",
        aadObjectId: newer,
      });
    });

    it("answers with the reference's status once the user uninstalled", async () => {
      await store.upsert(observation({ conversationId: "a:1" }));
      await store.markStatus(tenantId, "29:1-ada", "uninstalled", "installationUpdate remove");

      await expect(store.findByAadObjectId(tenantId, aad, firstTry)).resolves.toMatchObject({
        status: "uninstalled",
        statusReason: "installationUpdate remove",
      });
    });
  });

  describe("upsert", () => {
    it("keeps the stored conversation id when a later observation has none", async () => {
      await store.upsert(observation({ conversationId: "a:1" }));
      await store.upsert(observation({ conversationId: undefined, learnedFrom: "roster" }));
      await expect(store.findByTeamsUserId(tenantId, "29:1-ada")).resolves.toMatchObject({
        conversationId: "a:1",
        learnedFrom: "personal",
      });
    });

    it("replaces the service URL with a newer one but never with an older one", async () => {
      const t0 = new Date("2026-01-01T00:00:00Z");
      await store.upsert(observation({ serviceUrl: "https://one/", observedAt: t0 }));
      await store.upsert(
        observation({ serviceUrl: "https://two/", observedAt: new Date(t0.getTime() + 1000) }),
      );
      await store.upsert(
        observation({ serviceUrl: "https://stale/", observedAt: new Date(t0.getTime() - 1000) }),
      );
      await expect(store.findByTeamsUserId(tenantId, "29:1-ada")).resolves.toMatchObject({
        serviceUrl: "https://two/",
      });
    });

    it("skips the write when nothing changed", async () => {
      const first = await store.upsert(observation());
      const again = await store.upsert(observation());
      expect(first.created).toBe(true);
      expect(again.changed).toBe(false);
    });

    it("merges concurrent observations of one user without losing any field", async () => {
      await Promise.all([
        store.upsert(observation({ conversationId: "a:1" })),
        store.upsert(observation({ userPrincipalName: "ada@contoso.com", learnedFrom: "roster" })),
        store.upsert(observation({ email: "ada@contoso.com", learnedFrom: "team" })),
      ]);
      await expect(store.findByTeamsUserId(tenantId, "29:1-ada")).resolves.toMatchObject({
        conversationId: "a:1",
        userPrincipalName: "ada@contoso.com",
        email: "ada@contoso.com",
        learnedFrom: "personal",
      });
    });
  });

  describe("status", () => {
    it("marks a reference, keeps it, and a message from the user makes it active again", async () => {
      await store.upsert(observation());
      await store.markStatus(tenantId, "29:1-ada", "uninstalled", "personal app removed");
      await expect(store.findByTeamsUserId(tenantId, "29:1-ada")).resolves.toMatchObject({
        status: "uninstalled",
        statusReason: "personal app removed",
      });
      await store.upsert(observation({ learnedFrom: "roster" }));
      await expect(store.findByTeamsUserId(tenantId, "29:1-ada")).resolves.toMatchObject({
        status: "uninstalled",
      });
      await store.upsert(observation({ learnedFrom: "message" }));
      const back = await store.findByTeamsUserId(tenantId, "29:1-ada");
      expect(back?.status).toBe("active");
      expect(back?.statusReason).toBeUndefined();
    });

    it("ignores marking a user it never saw", async () => {
      await store.markStatus(tenantId, "29:nobody", "removed");
      await expect(store.findByTeamsUserId(tenantId, "29:nobody")).resolves.toBe(undefined);
    });

    it("forgets a conversation id on request", async () => {
      await store.upsert(observation({ conversationId: "a:1" }));
      await store.setConversationId(tenantId, "29:1-ada", undefined);
      const ref = await store.findByTeamsUserId(tenantId, "29:1-ada");
      expect(ref?.conversationId).toBeUndefined();
    });
  });

  describe("upsertMany", () => {
    it("writes a roster page in batches and merges into existing references", async () => {
      await store.upsert(
        observation({ teamsUserId: "29:u-7", aadObjectId: undefined, conversationId: "a:7" }),
      );
      const page: UserObservation[] = Array.from({ length: 250 }, (_, i) => ({
        tenantId,
        teamsUserId: `29:u-${i}`,
        aadObjectId: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        userPrincipalName: `user${i}@contoso.com`,
        name: `User ${i}`,
        serviceUrl: "https://smba.example/emea/",
        learnedFrom: "roster",
      }));
      await expect(store.upsertMany(page)).resolves.toEqual({ written: 250 });
      await expect(
        store.findByUserPrincipalName(tenantId, "USER199@contoso.com"),
      ).resolves.toMatchObject({ teamsUserId: "29:u-199", learnedFrom: "roster" });
      await expect(store.findByTeamsUserId(tenantId, "29:u-7")).resolves.toMatchObject({
        conversationId: "a:7",
        learnedFrom: "personal",
        userPrincipalName: "user7@contoso.com",
      });
      await expect(store.upsertMany(page)).resolves.toEqual({ written: 0 });
    });
  });
});
