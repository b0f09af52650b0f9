import type { LogHandler } from "@azure/functions";

import { startDeadLetterDraining } from "../queue/local-dead-letter-drainer";
import { LocalQueue, type QueueDrainer } from "../queue/local-queue";
import { LocalSessionQueue } from "../queue/local-session-queue";
import type { Registration } from "../registry";
import { consoleLogHandler, type RunningHttpHost, startHttpHost } from "./http-host";
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
  /** The local queue root (`LocalQueueDirectory`); without it, queue triggers are not run. */
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
  /** A session-enabled trigger (`isSessionsEnabled`) drains a session queue. */
  readonly queue: LocalQueue | LocalSessionQueue;
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
 * HTTP server, Service Bus queue triggers fed from the durable local queue with the trigger's
 * contract. The handlers are the ones Azure runs.
 */
const DEAD_LETTER_SUBQUEUE = /\/\$deadletterqueue$/i;

export async function startLocalHost(options: LocalHostOptions): Promise<RunningLocalHost> {
  const logFor = options.logHandlerFor ?? consoleLogHandler;
  const queues: DrainedQueue[] = [];
  const skipped: { functionName: string; reason: string }[] = [];
  const planned: {
    registration: Registration & { kind: "serviceBusQueue" };
    queue: LocalQueue | LocalSessionQueue;
    /** Bound to the queue's dead-letter subqueue (`<queue>/$DeadLetterQueue`). */
    deadLetters: boolean;
  }[] = [];

  const sessionQueueNames = new Set(
    options.registrations.flatMap((r) =>
      r.kind === "serviceBusQueue" && r.options.isSessionsEnabled === true
        ? [resolveAppSetting(r.options.queueName, options.settings)]
        : [],
    ),
  );
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
    const queueOptions = {
      directory: options.queueDirectory,
      queueName,
      ...(options.queueOptions?.maxDeliveryCount !== undefined
        ? { maxDeliveryCount: options.queueOptions.maxDeliveryCount }
        : {}),
      ...(options.queueOptions?.lockDurationMs !== undefined
        ? { lockDurationMs: options.queueOptions.lockDurationMs }
        : {}),
    };
    // The dead-letter subqueue of a session queue is read without sessions, as in Service Bus.
    const sessions = deadLetters
      ? sessionQueueNames.has(queueName)
      : registration.options.isSessionsEnabled === true;
    planned.push({
      registration,
      queue: sessions ? new LocalSessionQueue(queueOptions) : new LocalQueue(queueOptions),
      deadLetters,
    });
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
          ...(options.queueOptions?.pollIntervalMs !== undefined
            ? { pollIntervalMs: options.queueOptions.pollIntervalMs }
            : {}),
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
    const hostJson = options.hostJson;
    const common = {
      functionName: registration.name,
      ...(hostJson?.maxAutoLockRenewalMs !== undefined
        ? { maxAutoLockRenewalMs: hostJson.maxAutoLockRenewalMs }
        : {}),
      ...(options.queueOptions?.retryDelayMs !== undefined
        ? { retryDelayMs: options.queueOptions.retryDelayMs }
        : {}),
      ...(options.queueOptions?.pollIntervalMs !== undefined
        ? { pollIntervalMs: options.queueOptions.pollIntervalMs }
        : {}),
      logHandler: logFor(registration.name),
    };
    if (queue instanceof LocalSessionQueue) {
      drainers.push(
        queue.startDraining(registration.options.handler, {
          ...common,
          ...(hostJson?.maxConcurrentSessions !== undefined
            ? { maxConcurrentSessions: hostJson.maxConcurrentSessions }
            : {}),
          ...(hostJson?.maxConcurrentCallsPerSession !== undefined
            ? { maxConcurrentCallsPerSession: hostJson.maxConcurrentCallsPerSession }
            : {}),
          ...(hostJson?.sessionIdleTimeoutMs !== undefined
            ? { sessionIdleTimeoutMs: hostJson.sessionIdleTimeoutMs }
            : {}),
        }),
      );
      queues.push({ functionName: registration.name, queue });
      continue;
    }
    drainers.push(
      queue.startDraining(registration.options.handler, {
        functionName: registration.name,
        ...(options.hostJson?.maxConcurrentCalls !== undefined
          ? { maxConcurrentCalls: options.hostJson.maxConcurrentCalls }
          : {}),
        ...(options.hostJson?.maxAutoLockRenewalMs !== undefined
          ? { maxAutoLockRenewalMs: options.hostJson.maxAutoLockRenewalMs }
          : {}),
        ...(options.queueOptions?.retryDelayMs !== undefined
          ? { retryDelayMs: options.queueOptions.retryDelayMs }
          : {}),
        ...(options.queueOptions?.pollIntervalMs !== undefined
          ? { pollIntervalMs: options.queueOptions.pollIntervalMs }
          : {}),
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
      })()),
  };
}
