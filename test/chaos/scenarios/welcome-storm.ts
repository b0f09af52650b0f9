import { randomUUID } from "node:crypto";

import { HttpRequest, InvocationContext } from "@azure/functions";

import { createHeraldServices, type HeraldServices } from "../../../shared/composition";
import { memoryLogger } from "../../../shared/logging";
import { TableFactory, TABLES } from "../../../shared/store/table-factory";
import { startTeamsSimulator, type TeamsActivity } from "../../simulator";
import { seededRandom } from "../../simulator/faults";
import { MemoryQueue, type RecordedMessage } from "../../support/memory-queue";
import { testConfig } from "../../support/test-config";

export interface WelcomeStormOptions {
  readonly users: number;
  /** Function instances (separate composition roots over the same tables). */
  readonly instances: number;
  /** How often the whole storm is delivered (Teams retries, duplicate events). */
  readonly rounds: number;
  readonly seed: number;
  /**
   * Share of the bot's sends Teams answers 503/429 during the storm; afterwards every user
   * writes once more in calm weather, so a welcome whose send failed goes out then.
   */
  readonly sendFaultRate?: number;
}

export interface WelcomeStormReport {
  readonly users: number;
  readonly activitiesPosted: number;
  /** Answers by HTTP status. */
  readonly statuses: Record<number, number>;
  /** Welcome cards Teams received in total. */
  readonly welcomes: number;
  /** Users with no welcome / with more than one. */
  readonly withoutWelcome: number;
  readonly withSeveral: number;
  /** Welcome ledger rows recorded `sent`. */
  readonly ledgerSent: number;
  /** Bot sends (welcomes, replies) Teams failed on purpose. */
  readonly sendFaultsInjected: number;
}

const ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive";

/**
 * Welcome storm: every user installs the bot, and Teams delivers the `installationUpdate`,
 * the `conversationUpdate` and the user's first message at the same moment to different
 * function instances; then all of it again. Exactly one welcome per user must reach Teams.
 */
export async function runWelcomeStorm(options: WelcomeStormOptions): Promise<WelcomeStormReport> {
  const random = seededRandom(options.seed);
  const sim = await startTeamsSimulator({ seed: options.seed });
  try {
    const config = testConfig();
    // One work queue (with the broker's duplicate detection) shared by every instance; each
    // instance answers activities and runs work items, as function instances do.
    const queue = new MemoryQueue();
    const handlers = Array.from({ length: options.instances }, () =>
      createHeraldServices(config, memoryLogger(), {
        queue,
        tables: new TableFactory(config),
        botId: sim.botId,
      }),
    );
    /** Runs the due work items, spread over the instances at once (the harshest schedule). */
    const drain = async () => {
      for (let round = 0; round < 20; round++) {
        const now = Date.now();
        const due = queue.waiting.filter(
          (m) => m.scheduledFor === undefined || m.scheduledFor.getTime() <= now,
        );
        if (due.length === 0) return;
        queue.remove(due);
        await Promise.all(
          due.map((m) => runWork(handlers[Math.floor(random() * handlers.length)]!, m)),
        );
      }
    };
    const users = sim.addUsers(options.users);
    const storm: TeamsActivity[] = users.flatMap((user) => [
      sim.activities.personalInstall(user),
      sim.activities.personalConversationUpdate(user),
      sim.activities.message(user, "hi"),
    ]);

    const statuses: Record<number, number> = {};
    let posted = 0;
    const faultRate = options.sendFaultRate ?? 0;
    if (faultRate > 0)
      sim.setFaultRate({
        rate: faultRate,
        statuses: [503, 429],
        routes: ["sendActivity"],
        seed: options.seed,
      });
    for (let round = 0; round < options.rounds; round++) {
      const order = [...storm].sort(() => random() - 0.5);
      const answers = await Promise.all(
        order.map((activity) => {
          const handler = handlers[Math.floor(random() * handlers.length)]!;
          return post(handler, activity);
        }),
      );
      posted += answers.length;
      for (const status of answers) statuses[status] = (statuses[status] ?? 0) + 1;
      await drain();
    }
    if (faultRate > 0) {
      sim.setFaultRate({ rate: 0 });
      const calm = await Promise.all(
        users.map((user, i) =>
          post(handlers[i % handlers.length]!, sim.activities.message(user, "anyone there?")),
        ),
      );
      posted += calm.length;
      for (const status of calm) statuses[status] = (statuses[status] ?? 0) + 1;
      await drain();
    }

    let welcomes = 0;
    let withoutWelcome = 0;
    let withSeveral = 0;
    for (const user of users) {
      const count = sim
        .messagesToUser(user)
        .filter((a) =>
          (a.attachments ?? []).some(
            (x) => (x as { contentType?: string }).contentType === ADAPTIVE_CARD,
          ),
        ).length;
      welcomes += count;
      if (count === 0) withoutWelcome += 1;
      if (count > 1) withSeveral += 1;
    }
    const welcomeTable = await new TableFactory(config).table(TABLES.welcomes);
    let ledgerSent = 0;
    for await (const row of welcomeTable.listEntities<{ state?: string }>())
      if (row.state === "sent") ledgerSent += 1;

    return {
      users: users.length,
      activitiesPosted: posted,
      statuses,
      welcomes,
      withoutWelcome,
      withSeveral,
      ledgerSent,
      sendFaultsInjected: sim.stats().injectedFaults,
    };
  } finally {
    await sim.close();
  }
}

async function runWork(herald: HeraldServices, message: RecordedMessage): Promise<void> {
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName: "work",
    triggerMetadata: {
      messageId: message.messageId ?? randomUUID(),
      deliveryCount: 1,
      sessionId: message.sessionId,
      applicationProperties: message.applicationProperties ?? {},
    },
    logHandler: () => undefined,
  });
  await herald.work(message.body, context);
}

async function post(herald: HeraldServices, activity: TeamsActivity): Promise<number> {
  const request = new HttpRequest({
    method: "POST",
    url: "http://127.0.0.1:7071/api/messages",
    headers: { "content-type": "application/json" },
    body: { string: JSON.stringify(activity) },
  });
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName: "messages",
    logHandler: () => undefined,
  });
  const response = await herald.messages(request, context);
  return response.status ?? 200;
}
