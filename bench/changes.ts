import { randomUUID } from "node:crypto";

import { createHeraldServices } from "../shared/composition";
import { loadConfig } from "../shared/config";
import { memoryLogger } from "../shared/logging";
import { GLOBAL_PER_BOT_PER_TENANT_LIMIT } from "../shared/teams-limits";
import { type RouteName, startTeamsSimulator, type TeamsSimulator } from "../test/simulator";
import { oneBrokerTrigger } from "../test/support/one-broker";
import { BenchBroker } from "./broker";
import { RecordingTopic } from "./event-topic";
import { freshTables, ledgerStates, seedUsers } from "./infra";
import { LogCounter } from "./log-counter";
import { MAX_CONCURRENT_CALLS, MESSAGE_TEXT } from "./scenarios";
import { sustainedRate } from "./sim-stats";
import { round } from "./stats";

/** One change (update or recall) of every sent copy, as Teams saw it. */
export interface ChangePhase {
  /** Calls on the change's route answered 200 (copies changed). */
  readonly changed: number;
  /** Every Teams call of the phase, and those answered 429. */
  readonly calls: number;
  readonly throttled: number;
  /** Changes between the first and the last one, over the time between them. */
  readonly perSecond: number;
  readonly wallSeconds: number;
}

export interface ChangesFigures {
  readonly recipients: number;
  readonly latencyMs: number;
  readonly allowedPerSecond: number;
  readonly update: ChangePhase;
  readonly recall: ChangePhase;
  readonly ledger: Record<string, number>;
}

/**
 * 2d. Update and recall of `recipients` sent copies at Teams' limits: the simulator enforcing
 * them with `latencyMs` on every call, Herald pacing itself. One request to every user is sent
 * first (not measured); then an update of it (one PUT per copy) and a recall (one DELETE per
 * copy), each drained to the end, once the previous phase's rate windows emptied. Herald runs in this process with the
 * bench's in-memory broker (the trigger's contract), as the pipeline worker runs it.
 */
export async function changesScenario(
  tablesConnection: string,
  options: { recipients: number; latencyMs: number },
): Promise<ChangesFigures> {
  const sim = await startTeamsSimulator({
    recordBodies: false,
    enforceRateLimits: true,
    latencyMs: options.latencyMs,
  });
  try {
    const users = sim.addUsers(options.recipients);
    const tables = freshTables(tablesConnection);
    await seedUsers(tables, sim, users, true);
    const config = loadConfig({
      TableStorageConnection: tables.connectionString,
      TableNamePrefix: tables.prefix,
    });
    const logs = new LogCounter();
    const broker = new BenchBroker();
    const herald = createHeraldServices(config, logs.logger({ component: "bench" }), {
      queue: broker,
      // Events on, as deployed, published to an in-memory topic. Without one the intake's
      // `accepted` cannot be published: the request is dead-lettered and never dispatched.
      events: new RecordingTopic(),
      botId: sim.botId,
    });
    const trigger = oneBrokerTrigger(herald);
    const drain = async () => {
      const run = await broker.drain(
        trigger,
        { maxConcurrentCalls: MAX_CONCURRENT_CALLS, logHandler: logs.handler },
        Date.now() + 600_000,
      );
      // The bench's broker runs no dead-letter handler: a dead-lettered request is never recorded
      // failed, and the change passes after it would wait hours for its rows. Say so instead.
      if (run.deadLettered > 0)
        throw new Error(
          `2d: ${run.deadLettered} work items dead-lettered: ${logs.samples.join(" | ")}`,
        );
    };

    const id = `bench-changes-${randomUUID()}`;
    const key = { tenantId: sim.tenantId, id };
    await broker.enqueue([
      {
        messageId: id,
        body: {
          schemaVersion: 1,
          id,
          tenantId: sim.tenantId,
          recipients: users.map((u) => ({ aadObjectId: u.aadObjectId })),
          message: { text: MESSAGE_TEXT, format: "markdown" },
        },
      },
    ]);
    await drain();

    const revisions = herald.notifications.revisions;
    const log = memoryLogger();
    const update = await phase(sim, "updateActivity", async () => {
      await revisions.update(key, { message: { text: `${MESSAGE_TEXT} (corrected)` } }, log);
      await drain();
    });
    const recall = await phase(sim, "deleteActivity", async () => {
      await revisions.recall(key, {}, log);
      await drain();
    });
    return {
      recipients: options.recipients,
      latencyMs: options.latencyMs,
      allowedPerSecond:
        GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit / GLOBAL_PER_BOT_PER_TENANT_LIMIT.seconds,
      update,
      recall,
      ledger: await ledgerStates(tables),
    };
  } finally {
    await sim.close();
  }
}

/** Teams' longest rate window (2 s): waited out before a phase, so it starts as if alone. */
const RATE_WINDOW_MS = 2_000;

async function phase(
  sim: TeamsSimulator,
  route: RouteName,
  run: () => Promise<void>,
): Promise<ChangePhase> {
  // The simulator keeps the chats (a reset would forget the copies to change): the phase is
  // the calls made from its start, after the last phase's rate windows emptied.
  await new Promise((resolve) => setTimeout(resolve, RATE_WINDOW_MS));
  const startedAt = Date.now();
  await run();
  const wallSeconds = (Date.now() - startedAt) / 1000;
  const calls = sim.requests.filter((r) => r.at >= startedAt);
  const changes = calls.filter((r) => r.route === route && r.status === 200).map((r) => r.at);
  return {
    changed: changes.length,
    calls: calls.length,
    throttled: calls.filter((r) => r.status === 429).length,
    perSecond: round(sustainedRate(changes), 1),
    wallSeconds: round(wallSeconds, 2),
  };
}
