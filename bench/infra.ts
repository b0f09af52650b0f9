import { randomBytes } from "node:crypto";

import { loadConfig } from "../shared/config";
import { CARD_REFERENCE_KEY, newCardToken } from "../shared/model/card-actions";
import { DeliveryLedger } from "../shared/store/delivery-ledger";
import { NotificationRequestStore } from "../shared/store/notification-requests";
import { TableFactory, TABLES } from "../shared/store/table-factory";
import { UserReferenceStore } from "../shared/store/user-references";
import type { SimUser, TeamsActivity, TeamsSimulator } from "../test/simulator";
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

/**
 * A card with Approve / Reject buttons, sent to each of `users` as Herald's delivery leaves it:
 * the request row with its per-verb answers, a `sent` ledger row per user holding its card token.
 * Returns each user's Approve click as Teams posts it (the reference as Herald stamped it).
 */
export async function seedSentCards(
  target: TablesTarget,
  sim: TeamsSimulator,
  users: readonly SimUser[],
): Promise<TeamsActivity[]> {
  const tables = factory(target);
  const request = { tenantId: sim.tenantId, id: `bench-card-${randomBytes(4).toString("hex")}` };
  await new NotificationRequestStore(tables).create({
    id: request.id,
    state: "dispatched",
    source: "http",
    tenantId: request.tenantId,
    actions: { approve: { text: "Approved" }, reject: { text: "Rejected" } },
  });
  const ledger = new DeliveryLedger(tables);
  const rows = users.map((user) => ({
    recipientKey: `teamsUserId:${user.id}`,
    recipient: { teamsUserId: user.id },
  }));
  await ledger.create(request, rows);
  const clicks: TeamsActivity[] = [];
  for (const [i, user] of users.entries()) {
    const row = await ledger.get(request, rows[i]!.recipientKey);
    if (row === undefined) throw new Error("bench: a seeded ledger row is missing");
    const cardToken = newCardToken();
    await ledger.update(row, { state: "sent", teamsUserId: user.id, cardToken, attempts: 1 });
    const reference = {
      t: request.tenantId.toLowerCase(),
      r: request.id,
      k: row.recipientKey,
      v: 1,
      s: cardToken,
    };
    clicks.push(
      sim.activities.executeClick(user, {
        verb: "approve",
        data: { orderId: i, [CARD_REFERENCE_KEY]: reference },
      }),
    );
  }
  return clicks;
}
