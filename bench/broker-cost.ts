import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { TableClient } from "@azure/data-tables";

import { LocalQueue } from "../shared/queue/local-queue";
import { startServiceWorker } from "./fork";
import { round } from "./stats";

/** 7. What `npm start`'s queues cost beside its tables (issue 20). */
export interface BrokerCost {
  readonly messages: number;
  /** This process's CPU per message, ms: enqueue + receive + complete. */
  readonly cpuMsPerMessage: number;
  readonly cpuMsPerEnqueue: number;
  readonly cpuMsPerReceive: number;
  readonly cpuMsPerComplete: number;
  readonly tableRequests: number;
  /** Azurite's process CPU per Table request (half upserts, half point reads), ms. */
  readonly azuriteCpuMsPerTableRequest: number;
}

const cpuMs = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

/**
 * The local broker's cost per message, as a drain pays it: each message enqueued on its own (one
 * transaction, as a retry or a delivery is), received 16 at a time (host.json's
 * maxConcurrentCalls), completed one by one; on a fresh database in a temp folder, measured as
 * this process's CPU time. Beside it, Azurite's CPU per Table request: a fresh Azurite in a worker
 * process of its own (its CPU counted from after start-up) serving as many point requests.
 */
export async function brokerCostScenario(messages: number): Promise<BrokerCost> {
  const folder = mkdtempSync(join(tmpdir(), "herald-broker-cost-"));
  const queue = new LocalQueue({ directory: folder });
  let enqueue: number;
  let receive = 0;
  let complete = 0;
  try {
    queue.send([{ body: { warm: true }, messageId: "warm-up" }]); // schema, statements
    queue.complete(queue.receive(1)[0]!);
    const body = { tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47", requestId: "r-1", attempt: 1 };
    const started = process.cpuUsage();
    for (let n = 0; n < messages; n += 1)
      queue.send([
        { body, messageId: `m-${n}`, applicationProperties: { heraldKind: "delivery" } },
      ]);
    enqueue = cpuMs(started);
    for (;;) {
      const before = process.cpuUsage();
      const taken = queue.receive(16);
      receive += cpuMs(before);
      if (taken.length === 0) break;
      const settling = process.cpuUsage();
      for (const message of taken) queue.complete(message);
      complete += cpuMs(settling);
    }
  } finally {
    queue.close();
    rmSync(folder, { recursive: true, force: true });
  }

  const azurite = await startServiceWorker({ kind: "azurite" });
  const tableRequests = messages;
  let azuriteCpuMs: number;
  try {
    const table = TableClient.fromConnectionString(azurite.ready.url, "brokercost", {
      allowInsecureConnection: true,
    });
    await table.createTable();
    const rows = Array.from({ length: tableRequests / 2 }, (_, n) => String(n));
    for (let i = 0; i < rows.length; i += 8) {
      await Promise.all(
        rows.slice(i, i + 8).map(async (rowKey) => {
          await table.upsertEntity({ partitionKey: "p", rowKey, state: "sent", attempt: 1 });
          await table.getEntity("p", rowKey);
        }),
      );
    }
  } finally {
    azuriteCpuMs = (await azurite.stop()).cpuMs;
  }
  return {
    messages,
    cpuMsPerMessage: round((enqueue + receive + complete) / messages, 3),
    cpuMsPerEnqueue: round(enqueue / messages, 3),
    cpuMsPerReceive: round(receive / messages, 3),
    cpuMsPerComplete: round(complete / messages, 3),
    tableRequests,
    azuriteCpuMsPerTableRequest: round(azuriteCpuMs / tableRequests, 3),
  };
}
