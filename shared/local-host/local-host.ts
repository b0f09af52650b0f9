import type { LogHandler } from "@azure/functions";

import { LocalQueue } from "../queue/local-queue";
import type { Registration } from "../registry";
import { consoleLogHandler, type RunningHttpHost, startHttpHost } from "./http-host";
import { type QueueDrainer, startDeadLetterDraining, startDraining } from "./queue-drain";
import { type HostSettings, resolveAppSetting } from "./settings";

export interface LocalHostOptions {
  /** What the function modules registered (`registeredFunctions()`). */
  readonly registrations: readonly Registration[];
  /** App settings, for `%Name%` in binding properties. */
  readonly settings: Readonly<Record<string, string>>;
  readonly host?: string;
  /** 7071 by default, as `func start`; 0 takes a free port. */
  readonly port?: number;
  readonly hostJson?: Partial<HostSettings>;
  /** The local broker's folder (`LocalQueueDirectory`); without it, queue triggers are not run. */
  readonly queueDirectory: string | undefined;
  readonly queueOptions?: {
    readonly maxDeliveryCount?: number;
    readonly lockDurationMs?: number;
    readonly retryDelayMs?: number;
    readonly pollIntervalMs?: number;
  };
  readonly logHandlerFor?: (functionName: string) => LogHandler;
}

export interface DrainedQueue {
  readonly functionName: string;
  /** A session-enabled trigger (`isSessionsEnabled`) drains a queue with `sessions`. */
  readonly queue: LocalQueue;
}

export interface RunningLocalHost {
  readonly http: RunningHttpHost;
  readonly queues: readonly DrainedQueue[];
  /** Queue triggers not run, with the reason. */
  readonly skipped: readonly { functionName: string; reason: string }[];
  close(): Promise<void>;
}

/**
 * Runs the registered functions without the Functions host: HTTP triggers behind a local
 * HTTP server, Service Bus queue triggers fed from the local broker's queues with the trigger's
 * contract (`queue-drain.ts`). The handlers are the ones Azure runs.
 */
const DEAD_LETTER_SUBQUEUE = /\/\$deadletterqueue$/i;

export async function startLocalHost(options: LocalHostOptions): Promise<RunningLocalHost> {
  const logFor = options.logHandlerFor ?? consoleLogHandler;
  const queues: DrainedQueue[] = [];
  const skipped: { functionName: string; reason: string }[] = [];
  const planned: {
    registration: Registration & { kind: "serviceBusQueue" };
    queue: LocalQueue;
    /** Bound to the queue's dead-letter subqueue (`<queue>/$DeadLetterQueue`). */
    deadLetters: boolean;
  }[] = [];

  // Resolve every binding first, so a bad setting stops start-up before anything listens.
  for (const registration of options.registrations) {
    if (registration.kind !== "serviceBusQueue") continue;
    if (options.queueDirectory === undefined) {
      skipped.push({ functionName: registration.name, reason: "LocalQueueDirectory is not set" });
      continue;
    }
    if (registration.options.cardinality === "many") {
      throw new Error(
        `${registration.name}: cardinality "many" is not supported by the local host`,
      );
    }
    const bound = resolveAppSetting(registration.options.queueName, options.settings);
    const deadLetters = DEAD_LETTER_SUBQUEUE.test(bound);
    const queueName = bound.replace(DEAD_LETTER_SUBQUEUE, "");
    const queue = new LocalQueue({
      directory: options.queueDirectory,
      queueName,
      // The dead-letter subqueue of a session queue is read without sessions, as in Service Bus.
      sessions: !deadLetters && registration.options.isSessionsEnabled === true,
      ...pick(options.queueOptions ?? {}, ["maxDeliveryCount", "lockDurationMs"]),
    });
    planned.push({ registration, queue, deadLetters });
  }

  const http = await startHttpHost({
    registrations: options.registrations,
    ...(options.host !== undefined ? { host: options.host } : {}),
    port: options.port ?? 7071,
    ...(options.hostJson?.routePrefix !== undefined
      ? { routePrefix: options.hostJson.routePrefix }
      : {}),
    logHandlerFor: logFor,
  });

  const drainers: QueueDrainer[] = [];
  for (const { registration, queue, deadLetters } of planned) {
    if (deadLetters) {
      drainers.push(
        startDeadLetterDraining(queue, registration.options.handler, {
          functionName: registration.name,
          ...pick(options.queueOptions ?? {}, ["pollIntervalMs"]),
          logHandler: logFor(registration.name),
        }),
      );
      continue;
    }
    if (registration.options.autoCompleteMessages === false) {
      logFor(registration.name)(
        "warning",
        "autoCompleteMessages false is not supported locally: messages are completed when the handler returns",
      );
    }
    const hostJson = options.hostJson ?? {};
    drainers.push(
      startDraining(queue, registration.options.handler, {
        functionName: registration.name,
        ...pick(hostJson, [
          "maxConcurrentCalls",
          "maxConcurrentSessions",
          "maxConcurrentCallsPerSession",
          "sessionIdleTimeoutMs",
          "maxAutoLockRenewalMs",
        ]),
        ...pick(options.queueOptions ?? {}, ["retryDelayMs", "pollIntervalMs"]),
        logHandler: logFor(registration.name),
      }),
    );
    queues.push({ functionName: registration.name, queue });
  }

  let closing: Promise<void> | undefined;
  return {
    http,
    queues,
    skipped,
    close: () =>
      (closing ??= (async () => {
        await http.close();
        await Promise.all(drainers.map((d) => d.stop()));
        for (const { queue } of planned) queue.close();
      })()),
  };
}

/** The keys of `from` that are set, as an object to spread into options. */
function pick<T extends object, K extends keyof T>(
  from: T,
  keys: readonly K[],
): Partial<Pick<T, K>> {
  return Object.fromEntries(
    keys.flatMap((k) => (from[k] === undefined ? [] : [[k, from[k]]])),
  ) as Partial<Pick<T, K>>;
}
