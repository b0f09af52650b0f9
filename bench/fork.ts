import { type ChildProcess, fork } from "node:child_process";
import { join } from "node:path";

import type {
  AzuriteJob,
  BaselineJob,
  BaselineResult,
  EndpointJob,
  EndpointReady,
  EndpointResult,
  FromWorker,
  InstallJob,
  InstallResult,
  Job,
  PipelineJob,
  PipelineResult,
  ProcessorJob,
  ProcessorResult,
  ToWorker,
} from "./jobs";
import { heraldWorkerEnv } from "./stand-in-priority";

/** The bundled worker sits next to the bundled orchestrator (bench/out). */
const WORKER = join(__dirname, "worker.js");

/**
 * The Node options the Function App's worker gets (`languageWorkers__node__arguments` in
 * infra/modules/function-app.bicep; test/infra/settings-drift.test.ts keeps the two equal), so
 * peak RSS is measured as deployed: 8 MB semi-spaces (4 cost a fifth more CPU in scavenges, 16
 * passed 150 MB RSS), and a cap on the old generation (with a cap V8 collects it long before
 * reaching it: docs/benchmarks.md, "Peak RSS").
 */
export const FUNCTION_APP_NODE_OPTIONS = [
  "--max-semi-space-size=8",
  "--max-old-space-size=256",
] as const;

function spawnWorker(kind: Job["kind"]): ChildProcess {
  return fork(WORKER, [], {
    // Azurite stands in for Table Storage, not for a Herald process: Node's defaults.
    execArgv:
      kind === "azurite"
        ? []
        : (process.env.BENCH_WORKER_ARGS?.split(" ") ?? [
            "--expose-gc",
            ...FUNCTION_APP_NODE_OPTIONS,
          ]),
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    // Azurite keeps the bench's raised priority; Herald's workers put themselves back.
    ...(kind === "azurite" ? {} : { env: heraldWorkerEnv() }),
  });
}

function nextMessage(child: ChildProcess): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: FromWorker) => {
      cleanup();
      if (message.type === "error") reject(new Error(`worker: ${message.message}`));
      else resolve(message);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`worker exited (${code ?? "signal"}) before answering`));
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.on("exit", onExit);
  });
}

/** Waits for the worker to exit on its own after its answer; kills it after 5 s. */
async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill(), 5_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function send(child: ChildProcess, message: ToWorker): void {
  child.send(message);
}

async function runJob(job: Job): Promise<unknown> {
  const child = spawnWorker(job.kind);
  try {
    send(child, { type: "job", job });
    const answer = await nextMessage(child);
    if (answer.type !== "result") throw new Error(`worker answered ${answer.type}`);
    return answer.result;
  } finally {
    await exited(child);
  }
}

export function runPipelineWorker(job: PipelineJob): Promise<PipelineResult> {
  return runJob(job) as Promise<PipelineResult>;
}

export function runBaselineWorker(job: BaselineJob): Promise<BaselineResult> {
  return runJob(job) as Promise<BaselineResult>;
}

/** A worker that serves until stopped: the bot endpoint, or Azurite. */
export interface ServiceWorker {
  readonly ready: EndpointReady;
  /** Tells a processor worker to start draining. */
  go(): void;
  stop(): Promise<EndpointResult>;
}

export async function startServiceWorker(
  job: EndpointJob | AzuriteJob | ProcessorJob,
): Promise<ServiceWorker> {
  const child = spawnWorker(job.kind);
  send(child, { type: "job", job });
  const answer = await nextMessage(child);
  if (answer.type !== "ready") {
    child.kill();
    throw new Error(`endpoint worker answered ${answer.type}`);
  }
  return {
    ready: answer.ready,
    go: () => send(child, { type: "go" }),
    stop: async () => {
      try {
        send(child, { type: "stop" });
        const result = await nextMessage(child);
        if (result.type !== "result") throw new Error(`endpoint worker answered ${result.type}`);
        return result.result as EndpointResult;
      } finally {
        await exited(child);
      }
    },
  };
}

/** One processor instance of the scale-out scenario: ready once it drains; stop returns its figures. */
export async function startProcessorWorker(job: ProcessorJob): Promise<{
  readonly ready: EndpointReady;
  go(): void;
  stop(): Promise<ProcessorResult>;
}> {
  const worker = await startServiceWorker(job);
  return {
    ready: worker.ready,
    go: () => worker.go(),
    stop: async () => (await worker.stop()) as ProcessorResult,
  };
}

/**
 * The install phase's worker (jobs.ts InstallJob): once it serves the bot endpoint,
 * `settingsFor` starts what needs the endpoint's URL (the Graph simulator) and gives the
 * settings that name it; then the worker drains and answers.
 */
export async function runInstallWorker(
  job: InstallJob,
  settingsFor: (ready: EndpointReady) => Promise<Readonly<Record<string, string>>>,
): Promise<InstallResult> {
  const child = spawnWorker(job.kind);
  try {
    send(child, { type: "job", job });
    const ready = await nextMessage(child);
    if (ready.type !== "ready") throw new Error(`install worker answered ${ready.type}`);
    send(child, { type: "go", settings: await settingsFor(ready.ready) });
    const answer = await nextMessage(child);
    if (answer.type !== "result") throw new Error(`install worker answered ${answer.type}`);
    return answer.result as InstallResult;
  } finally {
    // A worker left waiting for `go` (settingsFor threw) is killed after 5 s.
    await exited(child);
  }
}
