import type { HttpHandler } from "@azure/functions";

import { createHeraldServices, type HeraldServices } from "../shared/composition";
import { loadConfig } from "../shared/config";
import { startBotEndpoint } from "../test/support/bot-endpoint";
import { oneBrokerTrigger } from "../test/support/one-broker";
import { BenchBroker, type BrokerRun, singleRecipientRequests } from "./broker";
import { RecordingTopic } from "./event-topic";
import type { EndpointReady, InstallJob, InstallResult } from "./jobs";
import { LogCounter } from "./log-counter";
import { RssSampler, sleep, summarize } from "./stats";

/** Log lines the report counts: which way each 1:1 chat was learned, and what the bot did. */
export const INSTALL_EVENTS = {
  installed: "Installed the app for a user Herald had not seen",
  alreadyInstalled: "The app was already installed for a user Herald had not seen",
  chatFromGraph: "Learned the 1:1 chat of a user Herald installed the app for, from Graph",
  memberNotConfirmed: "Teams did not confirm the installed app's chat member",
  welcomeSkipped: "Welcome skipped: Herald installed the app for this user",
  welcomeSent: "Welcome sent",
  detailsUnread: "Could not read the installing user's details",
} as const;

/**
 * How long the bot endpoint must have been idle after the drain before the run ends: Teams
 * posts a user's install events right after the install, so a delivery that learned the chat
 * from Graph can finish while they are still on their way, and the welcome work they queue
 * (which Herald must skip) would otherwise never run.
 */
const ENDPOINT_QUIET_MS = 500;

export interface PreparedInstall {
  readonly ready: EndpointReady;
  run(settings: Readonly<Record<string, string>>): Promise<InstallResult>;
}

/**
 * Herald as one Functions process runs it with proactive install on: one composition root
 * (`createHeraldServices`) behind both the bot endpoint, served over HTTP by the local host's
 * server, and the queue triggers, fed by the bench's in-memory broker, which also carries the
 * work the bot queues (welcomes). One pacer per process, as deployed. Served at once; the
 * composition root is made on `run`, once the Graph simulator's URL is known.
 */
export async function prepareInstall(job: InstallJob): Promise<PreparedInstall> {
  const logs = new LogCounter(Object.values(INSTALL_EVENTS));
  const broker = new BenchBroker();
  const wiring: { herald?: HeraldServices } = {};
  const answers: Record<string, number> = {};
  let inFlight = 0;
  let lastAnswerAt = 0;
  const messages: HttpHandler = async (request, context) => {
    const herald = wiring.herald;
    // Nothing installs before `run`, so nothing should post before it either.
    if (herald === undefined) return { status: 503 };
    inFlight += 1;
    try {
      const response = await herald.messages(request, context);
      const status = String(response.status ?? 200);
      answers[status] = (answers[status] ?? 0) + 1;
      return response;
    } finally {
      inFlight -= 1;
      lastAnswerAt = Date.now();
    }
  };
  const endpoint = await startBotEndpoint(messages, logs.handler);

  return {
    ready: { url: endpoint.url },
    run: async (settings) => {
      try {
        const config = loadConfig({
          TableStorageConnection: job.tables.connectionString,
          TableNamePrefix: job.tables.prefix,
          ProactiveInstall: "true",
          TeamsAppId: job.teamsAppId,
          ...settings,
        });
        const herald = createHeraldServices(config, logs.logger({ component: "bench" }), {
          queue: broker,
          events: new RecordingTopic(),
          botId: job.botId,
        });
        wiring.herald = herald;
        // botbuilder loads on the bot's first activity and the first send (~0.5 s, the event
        // loop blocked): a warm instance has paid that before, and it would otherwise stall
        // the first second of installs. Cold start is figure 4's.
        /* eslint-disable @typescript-eslint/no-require-imports -- warming the module cache only */
        require("botbuilder");
        require("botframework-connector");
        /* eslint-enable @typescript-eslint/no-require-imports */
        herald.bot();
        const handler = oneBrokerTrigger(herald);

        await broker.enqueue(singleRecipientRequests(job.tenantId, job.recipients, job.text));

        const rss = new RssSampler();
        const cpu = process.cpuUsage();
        const startedAt = Date.now();
        const deadline = startedAt + job.capMs;
        const options = { maxConcurrentCalls: job.maxConcurrentCalls, logHandler: logs.handler };
        const runs: BrokerRun[] = [];
        for (;;) {
          runs.push(await broker.drain(handler, options, deadline));
          while (
            Date.now() < deadline &&
            (inFlight > 0 || Date.now() - lastAnswerAt < ENDPOINT_QUIET_MS)
          )
            await sleep(50);
          if (broker.depth === 0 || Date.now() >= deadline) break;
        }
        const endedAt = Date.now();
        const used = process.cpuUsage(cpu);
        const durations = runs.flatMap((r) => Array.from(r.durationsMs));
        const sum = (pick: (r: BrokerRun) => number) => runs.reduce((n, r) => n + pick(r), 0);
        return {
          requests: job.recipients.length,
          startedAt,
          endedAt,
          invocations: sum((r) => r.invocations),
          completed: sum((r) => r.completed),
          abandoned: sum((r) => r.abandoned),
          deadLettered: sum((r) => r.deadLettered),
          // The broker's count is cumulative: its last run has them all.
          scheduled: runs.at(-1)?.scheduled ?? 0,
          left: broker.depth,
          handler: summarize(durations),
          cpuMs: Math.round((used.user + used.system) / 1000),
          rssPeakMb: rss.stop(),
          endpointAnswers: answers,
          metrics: logs.metrics,
          logLevels: logs.levels,
          logSamples: logs.samples,
          events: logs.events,
        };
      } finally {
        await endpoint.close();
      }
    },
  };
}
