import { TableFactory } from "../../shared/store/table-factory";
import { TeamStore } from "../../shared/store/teams";
import { testConfig } from "../support/test-config";

const tenantId = "9b1a6c2e-7d3f-4a5b-8c9d-0e1f2a3b4c5d";
const teamId = "19:abc123@thread.tacv2";

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const id of iterable) out.push(id);
  return out;
}

describe("TeamStore", () => {
  let store: TeamStore;

  beforeEach(() => {
    store = new TeamStore(new TableFactory(testConfig()));
  });

  it("records a team with its General channel id and marks it removed without deleting it", async () => {
    await store.upsert({ tenantId, teamId, name: "Ops", serviceUrl: "https://smba.example/" });
    await expect(store.get(tenantId, teamId)).resolves.toMatchObject({
      teamId,
      name: "Ops",
      generalChannelId: teamId,
      status: "active",
    });
    await store.markStatus(tenantId, teamId, "removed", "bot removed from team");
    await expect(store.get(tenantId, teamId)).resolves.toMatchObject({
      name: "Ops",
      status: "removed",
      statusReason: "bot removed from team",
    });
    await store.upsert({ tenantId, teamId, serviceUrl: "https://smba.example/" });
    await expect(store.get(tenantId, teamId)).resolves.toMatchObject({
      name: "Ops",
      status: "active",
    });
  });

  it("lists every active member id across table pages", async () => {
    const ids = Array.from({ length: 2500 }, (_, i) => `29:m-${i}`);
    await store.addMembers(tenantId, teamId, ids, "sync-1");
    await store.removeMembers(tenantId, teamId, ["29:m-3", "29:m-4"]);
    const listed = await collect(store.listMemberIds(tenantId, teamId));
    expect(listed).toHaveLength(2498);
    expect(new Set(listed)).toEqual(
      new Set(ids.filter((id) => id !== "29:m-3" && id !== "29:m-4")),
    );
    await expect(collect(store.listMemberIds(tenantId, "19:other@thread.tacv2"))).resolves.toEqual(
      [],
    );
  });

  it("marks removed the members a full sync did not see, but not ones added meanwhile", async () => {
    await store.addMembers(tenantId, teamId, ["29:a", "29:b", "29:c"], "sync-1");
    const started = new Date();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await store.addMembers(tenantId, teamId, ["29:d"]); // a member-added event during sync-2
    await store.addMembers(tenantId, teamId, ["29:a", "29:b"], "sync-2");
    const removed = await store.removeMembersNotIn(tenantId, teamId, "sync-2", started);
    expect(removed).toEqual(["29:c"]);
    await expect(store.memberStatus(tenantId, teamId, "29:c")).resolves.toBe("removed");
    expect((await collect(store.listMemberIds(tenantId, teamId))).sort()).toEqual([
      "29:a",
      "29:b",
      "29:d",
    ]);
  });
});
