import { randomUUID } from "node:crypto";

import { InvocationContext } from "@azure/functions";

import { createHeraldServices } from "../../../shared/composition";
import {
  BotbuilderConnector,
  botFrameworkAuthentication,
} from "../../../shared/connector/botbuilder-connector";
import type { TeamsConnector } from "../../../shared/connector/teams-connector";
import { memoryLogger } from "../../../shared/logging";
import type { NotificationStatus, RecipientState } from "../../../shared/notifications/status";
import { TableFactory } from "../../../shared/store/table-factory";
import { UserReferenceStore } from "../../../shared/store/user-references";
import { TestClock } from "../../integration/notifications-harness";
import { type FaultStatus, type SimUser, startTeamsSimulator } from "../../simulator";
import { seededRandom } from "../../simulator/faults";
import { MemoryQueue, type RecordedMessage } from "../../support/memory-queue";
import { oneBrokerTrigger } from "../../support/one-broker";
import { testConfig } from "../../support/test-config";
import { startFaultProxy } from "../support/fault-proxy";
import { judge, type PlannedRequest, textOf, type Verdict } from "../support/workload";

export interface FaultStormOptions {
  readonly requests: number;
  readonly users: number;
  /** Share of Teams calls that fail (status answers, timeouts and dropped connections together). */
  readonly faultRate: number;
  /** Statuses the simulator answers with (timeouts and resets come on top, from the proxy). */
  readonly statuses: readonly FaultStatus[];
  /** Of the failing calls, the share that time out / lose their connection. */
  readonly timeoutShare: number;
  readonly resetShare: number;
  readonly seed: number;
  /** MaxDeliveryAttempts: Herald's attempt budget per recipient. */
  readonly maxAttempts: number;
  /** The connector's per-call timeout (production: 15 s). */
  readonly callTimeoutMs: number;
}

export interface FaultStormReport extends Verdict {
  readonly teamsCalls: number;
  readonly injected: { status: Record<string, number>; timedOut: number; reset: number };
  /**
   * Sends Teams accepted (the simulator answered 2xx) whose answer Herald never saw: it timed
   * out, or the connection dropped, after Teams had taken the activity. Each may legitimately
   * cause one duplicate. Counted exactly, from both ends: accepted sends minus the sends the
   * connector reported `sent` (the proxy's own count raced under load: it could not tell
   * whether Herald read an answer it had forwarded).
   */
  readonly lateAccepted: number;
  /** The proxy's view of late acceptances (a lower bound; for diagnosis only). */
  readonly lateAcceptedByProxy: number;
  /** Share of Teams calls that failed. */
  readonly observedFaultRate: number;
  /** Queue messages handled (first tries, retries and pacing deferrals). */
  readonly invocations: number;
  /** Handler runs that threw (left to the broker's redelivery): never expected. */
  readonly handlerThrows: number;
  readonly maxAttemptsUsed: number;
  readonly failedLastErrors: string[];
}

/**
 * Fault storm: Teams (the simulator behind a fault proxy) fails a share of all calls with
 * 429/5xx answers, timeouts and dropped connections; the real processor (Azurite, botbuilder,
 * the Service Bus handler) runs every request through its retries; the queue is drained as a
 * broker would (scheduled messages wait for their time, on a test clock that jumps ahead).
 */
export async function runFaultStorm(options: FaultStormOptions): Promise<FaultStormReport> {
  const random = seededRandom(options.seed);
  const sim = await startTeamsSimulator({ seed: options.seed });
  const proxyShare = options.timeoutShare + options.resetShare;
  const proxy = await startFaultProxy({
    target: sim.serviceUrl.replace(/\/$/, ""),
    timeoutRate: options.faultRate * options.timeoutShare,
    resetRate: options.faultRate * options.resetShare,
    seed: options.seed + 1,
  });
  // Calls the proxy lets through fail at the simulator so that the total matches faultRate.
  const throughProxy = 1 - options.faultRate * proxyShare;
  const simRate = 1 - (1 - options.faultRate) / throughProxy;
  sim.setFaultRate({ rate: simRate, statuses: options.statuses, seed: options.seed });

  try {
    const config = testConfig({ MaxDeliveryAttempts: String(options.maxAttempts) });
    const tables = new TableFactory(config);
    const clock = new TestClock();
    const queue = new MemoryQueue(clock.now);
    const real = new BotbuilderConnector(botFrameworkAuthentication(config), undefined, {
      botId: sim.botId,
      timeoutMs: options.callTimeoutMs,
    });
    // Herald's side of each send: how many answers it actually received as `sent`.
    let sendsSeenSent = 0;
    const connector: TeamsConnector = {
      createPersonalConversation: (input) => real.createPersonalConversation(input),
      getMember: (input) => real.getMember(input),
      updateActivity: (input) => real.updateActivity(input),
      deleteActivity: (input) => real.deleteActivity(input),
      sendActivity: async (input) => {
        const result = await real.sendActivity(input);
        if (result.kind === "sent") sendsSeenSent += 1;
        return result;
      },
    };
    const herald = createHeraldServices(config, memoryLogger(), {
      queue,
      events: new MemoryQueue(),
      tables,
      connector,
      botId: sim.botId,
      clock: clock.now,
      pacing: { now: () => clock.now().getTime() },
      // Pacing waits move the test clock instead of holding the test (Teams' time, not ours).
      sleep: clock.sleep,
    });
    const services = herald.notifications;
    const handler = oneBrokerTrigger(herald);

    // Users as the bot endpoint records them; half already have their 1:1 chat id, so the
    // other half also need a (fallible) create call.
    const users = sim.addUsers(options.users);
    const store = new UserReferenceStore(tables);
    await store.upsertMany(
      users.map((user, i) => ({
        tenantId: sim.tenantId,
        teamsUserId: user.id,
        aadObjectId: user.aadObjectId,
        name: user.name,
        userPrincipalName: user.userPrincipalName,
        serviceUrl: proxy.serviceUrl,
        ...(i % 2 === 0 ? { conversationId: sim.personalConversationId(user) } : {}),
        learnedFrom: "personal" as const,
      })),
    );

    const plans: PlannedRequest[] = [];
    const run = randomUUID().slice(0, 8);
    for (let i = 0; i < options.requests; i++) {
      const id = `storm-${run}-${i}`;
      const chosen = new Set<SimUser>([users[Math.floor(random() * users.length)]!]);
      if (random() < 0.1)
        while (chosen.size < 3) chosen.add(users[Math.floor(random() * users.length)]!);
      const expected = new Map<string, RecipientState>();
      const byKey = new Map<string, SimUser>();
      for (const user of chosen) {
        expected.set(`aadObjectId:${user.aadObjectId.toLowerCase()}`, "sent");
        byKey.set(`aadObjectId:${user.aadObjectId.toLowerCase()}`, user);
      }
      const body = {
        schemaVersion: 1,
        id,
        tenantId: sim.tenantId,
        recipients: [...chosen].map((u) => ({ aadObjectId: u.aadObjectId })),
        message: { text: textOf(id), format: "plain" },
      };
      plans.push({ id, body, via: "queue", invalid: false, expected, users: byKey });
      await queue.enqueue([{ body, messageId: id }]);
    }

    // The broker: deliver every visible message; a throw brings it back with a higher count.
    let invocations = 0;
    let handlerThrows = 0;
    const deliver = async (message: RecordedMessage, deliveryCount: number): Promise<void> => {
      invocations += 1;
      const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: "notifications",
        triggerMetadata: {
          messageId: message.messageId ?? randomUUID(),
          deliveryCount,
          enqueuedTimeUtc: message.sentAt.toISOString(),
          applicationProperties: message.applicationProperties ?? {},
        },
        logHandler: () => undefined,
      });
      try {
        await handler(message.body, context);
      } catch {
        handlerThrows += 1;
        if (deliveryCount < 10) await deliver(message, deliveryCount + 1);
      }
    };
    for (let round = 0; ; round++) {
      if (round > 500) throw new Error("fault storm: the queue never drained");
      const batch = queue.takeAll();
      if (batch.length === 0) break;
      for (const message of batch)
        if (message.scheduledFor !== undefined) clock.advanceTo(message.scheduledFor);
      let next = 0;
      const worker = async () => {
        while (next < batch.length) await deliver(batch[next++]!, 1);
      };
      await Promise.all(Array.from({ length: Math.min(16, batch.length) }, worker));
    }

    const statuses = new Map<string, NotificationStatus | undefined>();
    for (const plan of plans) statuses.set(plan.id, await services.status.get(plan.id));
    const verdict = judge(sim, plans, statuses, {
      // A 500 is not retried (TEAMS-FACTS.md): `failed` with Teams' answer is right then.
      accept: (row) => row.state === "failed" && /^HTTP 500\b/.test(row.lastError ?? ""),
    });
    const stats = sim.stats();
    const status: Record<string, number> = {};
    let teamsCalls = proxy.stats.timedOut + proxy.stats.reset;
    let failedCalls = proxy.stats.timedOut + proxy.stats.reset;
    for (const [route, byStatus] of Object.entries(stats.byRoute)) {
      if (route !== "createConversation" && route !== "sendActivity") continue;
      for (const [code, n] of Object.entries(byStatus ?? {})) {
        teamsCalls += n;
        if (Number(code) >= 400) {
          failedCalls += n;
          status[code] = (status[code] ?? 0) + n;
        }
      }
    }
    let acceptedSends = 0;
    for (const [code, n] of Object.entries(stats.byRoute.sendActivity ?? {}))
      if (Number(code) < 300) acceptedSends += n;
    let maxAttemptsUsed = 0;
    const failedLastErrors: string[] = [];
    for (const s of statuses.values())
      for (const r of s?.recipients ?? []) {
        maxAttemptsUsed = Math.max(maxAttemptsUsed, r.attempts);
        if (r.state === "failed") failedLastErrors.push(r.lastError ?? "");
      }
    return {
      ...verdict,
      teamsCalls,
      injected: { status, timedOut: proxy.stats.timedOut, reset: proxy.stats.reset },
      lateAccepted: Math.max(0, acceptedSends - sendsSeenSent),
      lateAcceptedByProxy: proxy.stats.lateAccepted,
      observedFaultRate: teamsCalls === 0 ? 0 : failedCalls / teamsCalls,
      invocations,
      handlerThrows,
      maxAttemptsUsed,
      failedLastErrors,
    };
  } finally {
    await proxy.close();
    await sim.close();
  }
}
