import { appendFileSync } from "node:fs";

import { startDraining } from "../../shared/local-host/queue-drain";
import { LocalQueue } from "../../shared/queue/local-queue";

/**
 * One consumer of a local session queue as its own process (forked by
 * `local-session-queue.test.ts`, bundled first): what a second Functions instance is. Each
 * call appends a `start` and an `end` line to the shared log file; appends of one short line
 * are atomic, so the file's order is the order the calls happened in, across processes, with
 * no clock involved.
 *
 * Settings come as JSON in `HERALD_SESSION_CONSUMER`; `stop` on the IPC channel stops it.
 */
export interface ConsumerSettings {
  readonly directory: string;
  readonly consumer: string;
  readonly logFile: string;
  readonly lockDurationMs: number;
  readonly maxConcurrentSessions: number;
  readonly sessionIdleTimeoutMs: number;
  /** Longest wait between looks at the broker (100 ms unless set). */
  readonly pollIntervalMs?: number;
  /** How long each call takes; `hang`: calls never finish (the consumer is to be killed). */
  readonly handle: number | "hang";
}

export interface ConsumerEvent {
  readonly event: "start" | "end";
  readonly consumer: string;
  readonly pid: number;
  readonly sessionId: string;
  readonly messageId: string;
  readonly deliveryCount: number;
}

const settings = JSON.parse(process.env.HERALD_SESSION_CONSUMER ?? "{}") as ConsumerSettings;

function record(event: ConsumerEvent): void {
  appendFileSync(settings.logFile, `${JSON.stringify(event)}\n`);
}

const queue = new LocalQueue({
  directory: settings.directory,
  queueName: "herald-work",
  sessions: true,
  lockDurationMs: settings.lockDurationMs,
});

const drainer = startDraining(
  queue,
  async (_body, context) => {
    const line = {
      consumer: settings.consumer,
      pid: process.pid,
      sessionId: String(context.triggerMetadata?.sessionId),
      messageId: String(context.triggerMetadata?.messageId),
      deliveryCount: Number(context.triggerMetadata?.deliveryCount),
    };
    record({ event: "start", ...line });
    process.send?.({ started: line });
    const { handle } = settings;
    if (handle === "hang") await new Promise<never>(() => undefined);
    else await new Promise((done) => setTimeout(done, handle));
    record({ event: "end", ...line });
  },
  {
    functionName: "work",
    maxConcurrentSessions: settings.maxConcurrentSessions,
    sessionIdleTimeoutMs: settings.sessionIdleTimeoutMs,
    pollIntervalMs: settings.pollIntervalMs ?? 100,
    // Only what went wrong, for the test's stderr log; calls' own lines are not needed.
    logHandler: (level, ...args) => {
      if (level === "warning" || level === "error") {
        process.stderr.write(`${settings.consumer} ${level}: ${args.map(String).join(" ")}\n`);
      }
    },
  },
);

process.on("message", (message) => {
  if (message !== "stop") return;
  void drainer.stop(5_000).then(() => process.exit(0));
});
process.send?.("ready");
