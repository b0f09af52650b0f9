/**
 * A benchmark worker process: runs one job from bench/main.ts (Herald's pipeline, the
 * botbuilder baseline, the bot endpoint, one processor instance of the scale-out scenario,
 * or Herald with proactive install and its bot endpoint, or Azurite) alone in its process, so
 * memory and CPU figures are its own and not the orchestrator's (which hosts the Teams
 * simulator).
 */
import { toError } from "../shared/errors";
import { startAzuriteTables } from "../shared/local-host/azurite";
import type { RunningEndpoint } from "./endpoint-job";
import type { FromWorker, ToWorker } from "./jobs";
import { runAsHeraldWorker } from "./stand-in-priority";

runAsHeraldWorker();

/** Answers the orchestrator; a final answer ends the process (so --cpu-prof can write). */
function reply(message: FromWorker): void {
  const final = message.type !== "ready";
  process.send?.(message, undefined, {}, () => {
    if (final) process.exit(0);
  });
}

async function startAzurite(): Promise<RunningEndpoint> {
  const azurite = await startAzuriteTables();
  const cpu = process.cpuUsage();
  return {
    ready: { url: azurite.connectionString },
    stop: async () => {
      const used = process.cpuUsage(cpu);
      const rssPeakMb = Math.round(process.resourceUsage().maxRSS / 1024);
      await azurite.close();
      return {
        rssPeakMb,
        cpuMs: Math.round((used.user + used.system) / 1000),
        logLevels: {},
        logSamples: [],
        events: {},
      };
    },
  };
}

async function run(message: ToWorker): Promise<void> {
  if (message.type !== "job") return;
  const { job } = message;
  /* eslint-disable @typescript-eslint/no-require-imports -- each job loads only what it measures */
  switch (job.kind) {
    case "pipeline": {
      const { runPipeline } = require("./pipeline-job") as typeof import("./pipeline-job");
      reply({ type: "result", result: await runPipeline(job) });
      break;
    }
    case "baseline": {
      const { runBaseline } = require("./baseline-job") as typeof import("./baseline-job");
      reply({ type: "result", result: await runBaseline(job) });
      break;
    }
    case "install": {
      // Two steps (jobs.ts InstallJob): serve the endpoint, then run with `go`'s settings.
      const { prepareInstall } = require("./install-job") as typeof import("./install-job");
      const prepared = await prepareInstall(job);
      process.once("message", (next: ToWorker) => {
        if (next.type !== "go") return;
        prepared
          .run(next.settings ?? {})
          .then((result) => reply({ type: "result", result }))
          .catch((error: unknown) =>
            reply({ type: "error", message: toError(error).stack ?? toError(error).message }),
          );
      });
      reply({ type: "ready", ready: prepared.ready });
      break;
    }
    case "endpoint":
    case "processor":
    case "azurite": {
      const endpoint =
        job.kind === "endpoint"
          ? await (require("./endpoint-job") as typeof import("./endpoint-job")).startEndpoint(job)
          : job.kind === "processor"
            ? (require("./processor-job") as typeof import("./processor-job")).startProcessor(job)
            : await startAzurite();
      const onMessage = (next: ToWorker) => {
        if (next.type === "go") return endpoint.go?.();
        if (next.type !== "stop") return;
        process.off("message", onMessage);
        endpoint
          .stop()
          .then((result) => reply({ type: "result", result }))
          .catch((error: unknown) => reply({ type: "error", message: toError(error).message }));
      };
      process.on("message", onMessage);
      reply({ type: "ready", ready: endpoint.ready });
      break;
    }
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
}

process.once("message", (message: ToWorker) => {
  run(message).catch((error: unknown) =>
    reply({ type: "error", message: toError(error).stack ?? toError(error).message }),
  );
});
