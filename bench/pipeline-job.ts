import { createHeraldServices } from "../shared/composition";
import { loadConfig } from "../shared/config";
import { oneBrokerTrigger } from "../test/support/one-broker";
import { BenchBroker, singleRecipientRequests } from "./broker";
import { RecordingTopic } from "./event-topic";
import type { PipelineJob, PipelineResult } from "./jobs";
import { LogCounter } from "./log-counter";
import { round, RssSampler, summarize } from "./stats";

/**
 * Herald's notification pipeline as deployed, minus the broker: the intake and work triggers
 * (`createHeraldServices`, the composition root functions/*.ts use) with real Azurite tables and botbuilder's connector
 * client talking HTTP to the simulator. Only the queue (an in-memory broker with the trigger's
 * contract) and the pacing switch differ from the function's composition root.
 */
export async function runPipeline(job: PipelineJob): Promise<PipelineResult> {
  const config = loadConfig({
    TableStorageConnection: job.tables.connectionString,
    TableNamePrefix: job.tables.prefix,
  });
  const logs = new LogCounter();
  const broker = new BenchBroker();
  const topic = new RecordingTopic();
  const herald = createHeraldServices(config, logs.logger({ component: "bench" }), {
    queue: broker,
    events: topic,
    botId: job.botId,
    ...(job.pacing ? {} : { pacing: false as const }),
  });
  const handler = oneBrokerTrigger(herald);

  // LOB requests as the producer puts them on the queue: one recipient each, by AAD object id.
  await broker.enqueue(
    singleRecipientRequests(
      job.tenantId,
      job.recipients.map((aadObjectId) => ({ aadObjectId })),
      job.text,
    ),
  );

  global.gc?.();
  const liveHeapBeforeMb = round(process.memoryUsage().heapUsed / 2 ** 20);
  const rssBeforeMb = round(process.memoryUsage.rss() / 2 ** 20);
  let heapPeak = 0;
  // process.memoryUsage() walks every heap space: sampled twice a second, its cost stays out
  // of the CPU per notification (RSS alone is cheap: RssSampler).
  const heapTimer = setInterval(() => {
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }, 500);
  const rss = new RssSampler();
  const cpu = process.cpuUsage();
  const startedAt = Date.now();
  const run = await broker.drain(
    handler,
    { maxConcurrentCalls: job.maxConcurrentCalls, logHandler: logs.handler },
    startedAt + job.capMs,
  );
  const endedAt = Date.now();
  const used = process.cpuUsage(cpu);
  clearInterval(heapTimer);
  const rssPeakMb = rss.stop();
  // With --expose-gc (the bench passes it): the live heap once the run's garbage is gone.
  global.gc?.();
  const liveHeapAfterMb = round(process.memoryUsage().heapUsed / 2 ** 20);
  return {
    requests: job.recipients.length,
    startedAt,
    endedAt,
    invocations: run.invocations,
    completed: run.completed,
    abandoned: run.abandoned,
    deadLettered: run.deadLettered,
    scheduled: run.scheduled,
    left: broker.depth,
    handler: summarize(run.durationsMs),
    cpuMs: Math.round((used.user + used.system) / 1000),
    rssPeakMb,
    liveHeapAfterMb,
    rssBeforeMb,
    liveHeapBeforeMb,
    heapUsedPeakMb: round(heapPeak / 2 ** 20),
    events: topic.figures(endedAt - startedAt),
    metrics: logs.metrics,
    logLevels: logs.levels,
    logSamples: logs.samples,
  };
}
