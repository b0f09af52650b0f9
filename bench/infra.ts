import { randomBytes } from "node:crypto";

import { loadConfig } from "../shared/config";
import { TableFactory, TABLES } from "../shared/store/table-factory";
import { UserReferenceStore } from "../shared/store/user-references";
import type { SimUser, TeamsSimulator } from "../test/simulator";
import type { TablesTarget } from "./jobs";

/** A fresh table prefix: every scenario gets tables of its own in the one Azurite. */
export function freshTables(connectionString: string): TablesTarget {
  return { connectionString, prefix: `b${randomBytes(5).toString("hex")}` };
}

function factory(target: TablesTarget): TableFactory {
  return new TableFactory(
    loadConfig({ TableStorageConnection: target.connectionString, TableNamePrefix: target.prefix }),
  );
}

/**
 * Records users as Herald's bot endpoint would after their personal install (through the
 * store, in the store's own batches). With `withConversation`, the 1:1 conversation id Teams
 * gave is stored too (a user Herald has messaged before); without, the first notification
 * has to create the conversation (one more call to Teams).
 */
export async function seedUsers(
  target: TablesTarget,
  sim: TeamsSimulator,
  users: readonly SimUser[],
  withConversation: boolean,
): Promise<void> {
  const store = new UserReferenceStore(factory(target));
  const chunk = 1000;
  for (let i = 0; i < users.length; i += chunk) {
    await store.upsertMany(
      users.slice(i, i + chunk).map((user) => ({
        // The user's own tenant (the scale-out scenario seeds users of several).
        tenantId: user.tenantId,
        teamsUserId: user.id,
        aadObjectId: user.aadObjectId,
        name: user.name,
        userPrincipalName: user.userPrincipalName,
        email: user.email,
        serviceUrl: sim.serviceUrl,
        conversationId: withConversation ? sim.personalConversationId(user) : undefined,
        learnedFrom: "personal" as const,
      })),
    );
  }
}

/** How many delivery ledger rows are in each state (what `GET /api/notifications` reads). */
export async function ledgerStates(target: TablesTarget): Promise<Record<string, number>> {
  const table = await factory(target).table(TABLES.deliveries);
  const counts: Record<string, number> = {};
  for await (const row of table.listEntities<{ state?: string }>({
    queryOptions: { select: ["state"] },
  })) {
    const state = row.state ?? "(none)";
    counts[state] = (counts[state] ?? 0) + 1;
  }
  return counts;
}
