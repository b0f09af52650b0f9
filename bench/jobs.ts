import type { EventFigures } from "./event-topic";

/**
 * What the benchmark's orchestrator (bench/main.ts: Azurite, the Teams simulator, reporting)
 * asks of a worker process (bench/worker.ts: Herald or the baseline, alone in its process so
 * its RSS is its own), and what comes back. Sent over the child_process IPC channel.
 */

export interface TablesTarget {
  readonly connectionString: string;
  readonly prefix: string;
}

export interface PipelineJob {
  readonly kind: "pipeline";
  readonly tables: TablesTarget;
  readonly tenantId: string;
  readonly botId: string;
  /** One single-recipient request per AAD object id. */
  readonly recipients: readonly string[];
  /** Herald's own pacing under Teams' limits (off measures raw overhead). */
  readonly pacing: boolean;
  readonly maxConcurrentCalls: number;
  readonly text: string;
  /** Stop delivering after this long (ms) even if work is left. */
  readonly capMs: number;
}

/** What a worker that drained the broker reports of the drain itself. */
export interface DrainResult {
  readonly requests: number;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly invocations: number;
  readonly completed: number;
  readonly abandoned: number;
  readonly deadLettered: number;
  readonly scheduled: number;
  readonly left: number;
  readonly handler: { p50Ms: number; p99Ms: number; maxMs: number; count: number };
  /** CPU time (user + system) the worker spent while draining, ms. */
  readonly cpuMs: number;
  readonly rssPeakMb: number;
}

export interface PipelineResult extends DrainResult {
  /** What reached the events topic: how many, how fast, how long after their transition. */
  readonly events: EventFigures;
  readonly rssBeforeMb: number;
  readonly heapUsedPeakMb: number;
  /** Live heap (after a forced GC) before and after the run: growth would be a leak. */
  readonly liveHeapBeforeMb: number;
  readonly liveHeapAfterMb: number;
  readonly metrics: Record<string, number>;
  readonly logLevels: Record<string, number>;
  readonly logSamples: readonly string[];
}

export interface BaselineReference {
  readonly userId: string;
  readonly conversationId: string;
}

export type BaselineMode = "sequential" | "promise-all" | "teamsfx";

export interface BaselineJob {
  readonly kind: "baseline";
  /**
   * botbuilder's proactive-messages sample: one `await` per user, or all users at once; or the
   * TeamsFx notification-bot template (`installations()` then `sendMessage` per target).
   */
  readonly mode: BaselineMode;
  /** Where TeamsFx is installed (mode "teamsfx"). */
  readonly teamsfxPath?: string;
  readonly serviceUrl: string;
  readonly tenantId: string;
  readonly botId: string;
  readonly references: readonly BaselineReference[];
  readonly text: string;
  readonly capMs: number;
}

export interface BaselineResult {
  readonly attempted: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly cpuMs: number;
  readonly rssPeakMb: number;
  readonly errorSamples: readonly string[];
}

export interface EndpointJob {
  readonly kind: "endpoint";
  /** App settings for functions/messages.ts' composition root (tables, local queue). */
  readonly settings: Readonly<Record<string, string>>;
}

export interface EndpointReady {
  /** The endpoint's URL, or Azurite's connection string. */
  readonly url: string;
}

export interface EndpointResult {
  readonly rssPeakMb: number;
  /** CPU time (user + system) the process spent while serving, ms. */
  readonly cpuMs: number;
  readonly logLevels: Record<string, number>;
  readonly logSamples: readonly string[];
  /** Counts of log lines the report looks for (e.g. roster syncs queued). */
  readonly events: Record<string, number>;
}

/**
 * One of K independent Herald processor instances of the scale-out scenario: its own
 * composition root (so its own pacer), draining the work queue shared by all K, a
 * session queue of the local broker (one database file), with host.json's session settings.
 */
export interface ProcessorJob {
  readonly kind: "processor";
  readonly tables: TablesTarget;
  readonly botId: string;
  /** The local broker's folder (`LocalQueueDirectory`) and queue name, the same for every instance. */
  readonly queueDirectory: string;
  readonly queueName: string;
  readonly lockDurationMs: number;
  readonly maxConcurrentSessions: number;
  readonly maxConcurrentCallsPerSession: number;
  readonly sessionIdleTimeoutMs: number;
  readonly pollIntervalMs: number;
}

/** A stretch of time one processor spent on one session (its invocations, merged). */
export interface SessionHold {
  readonly sessionId: string;
  /** First and last invocation start, ms epoch. */
  readonly from: number;
  readonly to: number;
  readonly invocations: number;
}

export interface ProcessorResult extends EndpointResult {
  readonly pid: number;
  readonly invocations: number;
  /** Invocations that threw (the queue delivers them again). */
  readonly failedInvocations: number;
  readonly metrics: Record<string, number>;
  readonly holds: readonly SessionHold[];
  /**
   * Work-trigger invocations, from start to return, ms: with `maxConcurrentCallsPerSession`
   * calls in flight a session's rate is at most that many per this long (Little's law).
   */
  readonly handler: { p50Ms: number; p99Ms: number; maxMs: number; count: number };
  /** Event-loop delay while draining, ms: how far CPU contention moved its timers. */
  readonly loopDelayMs: LoopDelay;
}

export interface LoopDelay {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** A never-seen recipient as a LOB app names one: by UPN, or by AAD object id. */
export type InstallRecipient =
  { readonly userPrincipalName: string } | { readonly aadObjectId: string };

/**
 * First contact through proactive install (bench/install.ts): Herald with `ProactiveInstall`
 * on, serving its bot endpoint over HTTP (Teams posts each install's events there) and
 * draining one single-recipient request per never-seen user. In two steps, because the Graph
 * simulator must know the endpoint's URL before it starts and Herald must know Graph's: the
 * worker serves the endpoint and answers `ready` with its URL; `go` brings the settings that
 * name the Graph simulator (`GraphEndpoint`), and the worker then drains and answers `result`.
 */
export interface InstallJob {
  readonly kind: "install";
  readonly tables: TablesTarget;
  readonly tenantId: string;
  readonly botId: string;
  /** The manifest id the Graph simulator's catalog publishes (`TeamsAppId`). */
  readonly teamsAppId: string;
  /** One single-recipient request each. */
  readonly recipients: readonly InstallRecipient[];
  readonly maxConcurrentCalls: number;
  readonly text: string;
  readonly capMs: number;
}

/** The drain spans the first invocation to the last one, and the install events' answers after it. */
export interface InstallResult extends DrainResult {
  /** Activities the bot endpoint answered, by HTTP status. */
  readonly endpointAnswers: Record<string, number>;
  readonly metrics: Record<string, number>;
  readonly logLevels: Record<string, number>;
  readonly logSamples: readonly string[];
  /** Counts of log lines the report looks for (which way each 1:1 chat was learned). */
  readonly events: Record<string, number>;
}

/** Azurite's Table service in a process of its own (Table Storage is a separate service). */
export interface AzuriteJob {
  readonly kind: "azurite";
}

export type Job = PipelineJob | BaselineJob | EndpointJob | AzuriteJob | ProcessorJob | InstallJob;

export type ToWorker =
  | { readonly type: "job"; readonly job: Job }
  /**
   * A processor starts draining (once every instance is up: see bench/scale-out.ts); the
   * install job starts with the app settings that needed its endpoint's URL first.
   */
  | { readonly type: "go"; readonly settings?: Readonly<Record<string, string>> }
  | { readonly type: "stop" };

export type FromWorker =
  | { readonly type: "ready"; readonly ready: EndpointReady }
  | {
      readonly type: "result";
      readonly result: PipelineResult | BaselineResult | EndpointResult | InstallResult;
    }
  | { readonly type: "error"; readonly message: string };
