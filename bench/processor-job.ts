import type { InvocationContext } from "@azure/functions";

import { createHeraldServices } from "../shared/composition";
import { loadConfig } from "../shared/config";
import { type QueueDrainer, startDraining } from "../shared/local-host/queue-drain";
import { LocalQueue } from "../shared/queue/local-queue";
import { LocalTopic } from "../shared/queue/local-topic";
import type { RunningEndpoint } from "./endpoint-job";
import type { ProcessorJob, ProcessorResult, SessionHold } from "./jobs";
import { LogCounter } from "./log-counter";
import { LoopDelaySampler, RssSampler, summarize } from "./stats";

/** Invocations of one session further apart than this start a new hold (a handoff between). */
const HOLD_GAP_MS = 1_000;

/**
 * One Herald processor instance of the scale-out scenario, as Azure runs one: its own
 * composition root (`createHeraldServices`, so its own tenant pacer), the work trigger
 * (`herald.work`) fed by the session-enabled work queue that every instance drains. The queue
 * is the real local broker's session queue on one database file all instances share, so only one
 * process at a time holds a tenant's session, as Service Bus would grant it; what Herald schedules
 * (retries, pacing deferrals) goes back to the same queue. Only the broker differs from Azure.
 */
export function startProcessor(job: ProcessorJob): RunningEndpoint {
  const config = loadConfig({
    TableStorageConnection: job.tables.connectionString,
    TableNamePrefix: job.tables.prefix,
  });
  const logs = new LogCounter(["lost:", "delivered again"]);
  const queue = new LocalQueue({
    directory: job.queueDirectory,
    queueName: job.queueName,
    sessions: true,
    lockDurationMs: job.lockDurationMs,
  });
  const herald = createHeraldServices(config, logs.logger({ component: "bench" }), {
    queue,
    // The local broker's topic on the same database, as npm start publishes events.
    events: new LocalTopic({ directory: job.queueDirectory }),
    botId: job.botId,
  });
  // botbuilder loads on the first delivery (~0.5 s); an instance in Azure pays that once at
  // start, not inside the first session it holds, so load it before taking any session.
  /* eslint-disable @typescript-eslint/no-require-imports -- warming the module cache only */
  require("botbuilder");
  require("botframework-connector");
  /* eslint-enable @typescript-eslint/no-require-imports */

  // Which sessions this process ran, and when: the orchestrator merges them into handoffs.
  const holds: { sessionId: string; from: number; to: number; invocations: number }[] = [];
  const current = new Map<string, (typeof holds)[number]>();
  let invocations = 0;
  let failed = 0;
  const durations: number[] = [];
  const handler = async (message: unknown, context: InvocationContext): Promise<void> => {
    invocations += 1;
    const meta = context.triggerMetadata as { sessionId?: unknown } | undefined;
    const sessionId = typeof meta?.sessionId === "string" ? meta.sessionId : "";
    const now = Date.now();
    const hold = current.get(sessionId);
    if (hold !== undefined && now - hold.to <= HOLD_GAP_MS) {
      hold.to = now;
      hold.invocations += 1;
    } else {
      const next = { sessionId, from: now, to: now, invocations: 1 };
      holds.push(next);
      current.set(sessionId, next);
    }
    const t0 = performance.now();
    try {
      await herald.work(message, context);
    } catch (error) {
      failed += 1;
      throw error;
    } finally {
      durations.push(performance.now() - t0);
    }
  };

  const rss = new RssSampler();
  const loop = new LoopDelaySampler();
  const cpu = process.cpuUsage();
  // Draining starts on "go", once every instance is up: K Node processes starting on the same
  // two cores would otherwise take CPU from the first one already sending (in Azure each
  // instance boots on a machine of its own).
  let drainer: QueueDrainer | undefined;
  return {
    ready: { url: `pid ${process.pid}` },
    go: () => {
      drainer ??= startDraining(queue, handler, {
        functionName: "work",
        maxConcurrentSessions: job.maxConcurrentSessions,
        maxConcurrentCallsPerSession: job.maxConcurrentCallsPerSession,
        sessionIdleTimeoutMs: job.sessionIdleTimeoutMs,
        pollIntervalMs: job.pollIntervalMs,
        logHandler: logs.handler,
      });
    },
    stop: async (): Promise<ProcessorResult> => {
      await drainer?.stop();
      const used = process.cpuUsage(cpu);
      return {
        pid: process.pid,
        rssPeakMb: rss.stop(),
        cpuMs: Math.round((used.user + used.system) / 1000),
        invocations,
        failedInvocations: failed,
        metrics: logs.metrics,
        logLevels: logs.levels,
        logSamples: logs.samples,
        events: logs.events,
        holds: holds.map((h): SessionHold => ({ ...h })),
        loopDelayMs: loop.stop(),
        handler: summarize(durations),
      };
    },
  };
}
