import { registeredFunctions } from "../shared/registry";
import type { EndpointJob, EndpointReady, EndpointResult } from "./jobs";
import { LogCounter } from "./log-counter";
import { RssSampler } from "./stats";

/** What the bot logs when a team install put its roster sync on the queue. */
export const ROSTER_SYNC_QUEUED = "roster sync and welcome queued";

export interface RunningEndpoint {
  readonly ready: EndpointReady;
  /** Starts the work a service waits for (a processor's drain); others start at once. */
  go?(): void;
  stop(): Promise<EndpointResult>;
}

/**
 * `POST /api/messages` as `npm start` serves it: functions/messages.ts loaded and registered
 * as the host loads it (its lazy composition root reads the app settings from the
 * environment on the first request), behind the local host's HTTP server on a free port.
 */
export async function startEndpoint(job: EndpointJob): Promise<RunningEndpoint> {
  Object.assign(process.env, job.settings);
  /* eslint-disable @typescript-eslint/no-require-imports -- load the function file the way the host does, after the settings are in place */
  require("../functions/messages");
  const { startHttpHost } =
    require("../shared/local-host/http-host") as typeof import("../shared/local-host/http-host");
  /* eslint-enable @typescript-eslint/no-require-imports */
  const logs = new LogCounter([ROSTER_SYNC_QUEUED]);
  const host = await startHttpHost({
    registrations: registeredFunctions().filter((r) => r.name === "messages"),
    port: 0,
    logHandlerFor: () => logs.handler,
  });
  const route = host.routes.find((r) => r.functionName === "messages");
  if (route === undefined) throw new Error("functions/messages.ts registered no messages route");
  const rss = new RssSampler();
  const cpu = process.cpuUsage();
  return {
    ready: { url: host.urlOf(route) },
    stop: async () => {
      const used = process.cpuUsage(cpu);
      await host.close();
      return {
        rssPeakMb: rss.stop(),
        cpuMs: Math.round((used.user + used.system) / 1000),
        logLevels: logs.levels,
        events: logs.events,
        logSamples: logs.samples,
      };
    },
  };
}
