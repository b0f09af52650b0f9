import type { z } from "zod";

import type { Config } from "../config";
import type { TeamsConnector } from "../connector/teams-connector";
import { CatalogAppIds } from "../graph/catalog-app-ids";
import { FetchGraphClient } from "../graph/fetch-graph-client";
import { graphCredential } from "../graph/graph-credential";
import { GRAPH_INSTALL_PER_APP_PER_TENANT } from "../graph/graph-limits";
import type { GraphPort } from "../graph/graph-port";
import type { Logger } from "../logging";
import { createWorkQueue } from "../queue/create-queue";
import type { QueuePort } from "../queue/queue-port";
import { DeadLetterCopies } from "../store/dead-letter-copies";
import { DeliveryLedger } from "../store/delivery-ledger";
import { NotificationRequestStore } from "../store/notification-requests";
import { TableFactory } from "../store/table-factory";
import { TeamStore } from "../store/teams";
import { UserReferenceStore } from "../store/user-references";
import { WelcomeLedger } from "../store/welcome-ledger";
import { type ClaimHolders, localProcessHolders, remoteHolders } from "./claim-holders";
import { CopyChanges } from "./copy-changes";
import { CopyLedger } from "./copy-ledger";
import { DeadLetterRecorder } from "./dead-letter-recorder";
import { DeliveryService, type UserDirectory } from "./delivery";
import { DeliveryClaims } from "./delivery-claims";
import { DeliveryRecorder } from "./delivery-recorder";
import { Dispatcher, type TeamDirectory } from "./dispatch";
import { graphGroupDirectory } from "./group-directory";
import { NotificationIntake } from "./intake";
import { Pacer, type PacerOptions } from "./pacing";
import { type InstallUserDirectory, ProactiveInstaller } from "./proactive-install";
import type { WorkHandler } from "./queue-handler";
import { RequestContents } from "./request-contents";
import type { RetryPolicy } from "./retry-policy";
import { RevisionPasses } from "./revision-pass";
import { NotificationRevisions } from "./revisions";
import { NotificationStatusReader } from "./status";
import { TeamsOperations } from "./teams-operations";
import { TenantWorkRunner } from "./tenant-work";
import {
  copyWorkSchema,
  deliveryWorkSchema,
  dispatchWorkSchema,
  type QueueMessageInfo,
  revisionWorkSchema,
} from "./work-items";

export interface NotificationServicesOptions {
  /** The internal work queue (default: `createWorkQueue(config)`, built on first use). */
  readonly queue?: QueuePort;
  /** Microsoft Graph (default: the fetch client on `GraphEndpoint`, made on first use). */
  readonly graph?: GraphPort;
  /** The Teams connector (default: botbuilder's, loaded on first use). */
  readonly connector?: TeamsConnector;
  readonly tables?: TableFactory;
  readonly users?: UserDirectory & InstallUserDirectory;
  readonly teams?: TeamDirectory;
  /** Pacing limits, or `false` to turn pacing off (benchmarks of raw overhead only). */
  readonly pacing?: PacerOptions | false;
  /** The bot's Teams id `28:…` for conversation creation when no app id is configured. */
  readonly botId?: string;
  /** The process's pacer (shared with the bot's work); default: one made from `pacing`. */
  readonly pacer?: Pacer;
  readonly clock?: () => Date;
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** How long a `sending` claim protects a delivery from other invocations (default 2 min). */
  readonly claimLeaseMs?: number;
  /** Longest pacing wait spent inside the function; longer ones re-schedule (default 1 s). */
  readonly maxPaceWaitMs?: number;
  /**
   * Who holds delivery claims (default: this machine's processes with the local broker, where
   * a dead holder can be told; in Azure only the broker's session tells).
   */
  readonly claimHolders?: ClaimHolders;
  /**
   * How old a request's content may be when queued work sends it (default 1 s): how soon an
   * update or recall reaches deliveries already queued in another process.
   */
  readonly contentMaxAgeMs?: number;
}

export interface NotificationServices {
  readonly dispatcher: Dispatcher;
  readonly delivery: DeliveryService;
  readonly intake: NotificationIntake;
  readonly status: NotificationStatusReader;
  /** Updates and recalls of accepted requests (HTTP `PATCH`/`DELETE`, the intake queue). */
  readonly revisions: NotificationRevisions;
  readonly pacer: Pacer | undefined;
  /** The tenant's Teams calls under `pacer` (the bot's work waits for its slots here too). */
  readonly teamsWork: TenantWorkRunner;
  /** The work queue's handlers for the notification kinds (`dispatch`, `delivery`). */
  readonly workHandlers: {
    readonly dispatch: WorkHandler;
    readonly delivery: WorkHandler;
    readonly revision: WorkHandler;
    readonly copy: WorkHandler;
  };
  /** The internal work queue. */
  readonly queue: () => QueuePort;
  readonly deadLetters: DeadLetterRecorder;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One lazy value: made on first use (the one lazy helper of the composition roots). */
export function lazy<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
}

/**
 * A work item's body through its schema. Only Herald writes work items, so a malformed one is a
 * bug no retry would fix: logged and dropped (undefined).
 */
export function parseWork<T>(
  schema: z.ZodType<T>,
  kind: string,
  body: unknown,
  log: Logger,
): T | undefined {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  log.error(`Malformed ${kind} work item dropped`, {
    errors: parsed.error.issues
      .slice(0, 10)
      .map((i) => `${i.path.map(String).join(".")}: ${i.message}`)
      .join("; "),
  });
  return undefined;
}

/**
 * The notification pipeline's composition root. Everything heavy (the Service Bus SDK,
 * botbuilder) is created on first use, so the HTTP status function never loads botbuilder.
 */
export function createNotificationServices(
  config: Config,
  logger: Logger,
  options: NotificationServicesOptions = {},
): NotificationServices {
  const tables = options.tables ?? new TableFactory(config);
  const clock = options.clock ?? (() => new Date());
  const requestStore = new NotificationRequestStore(tables, clock);
  const ledger = new DeliveryLedger(tables, clock);
  const queue =
    options.queue !== undefined ? () => options.queue! : lazy(() => createWorkQueue(config));
  const connector =
    options.connector !== undefined
      ? () => options.connector!
      : lazy((): TeamsConnector => {
          /* eslint-disable @typescript-eslint/no-require-imports -- lazy: botbuilder costs ~450 ms to load and only the queue trigger needs it */
          const { BotbuilderConnector, botFrameworkAuthentication, policyOf } =
            require("../connector/botbuilder-connector") as typeof import("../connector/botbuilder-connector");
          /* eslint-enable @typescript-eslint/no-require-imports */
          const appId = config.bot.kind === "authenticated" ? config.bot.appId : undefined;
          const botId = appId !== undefined ? `28:${appId}` : options.botId;
          return new BotbuilderConnector(botFrameworkAuthentication(config), appId, {
            botId,
            logger,
            serviceUrls: policyOf(config),
          });
        });
  const pacer =
    options.pacer ?? (options.pacing === false ? undefined : new Pacer(options.pacing ?? {}));

  const users = options.users ?? new UserReferenceStore(tables, clock);
  const graph = lazy(
    (): GraphPort =>
      options.graph ??
      new FetchGraphClient({
        endpoint: config.graph.endpoint,
        credential: graphCredential(config.bot),
        logger,
      }),
  );
  const sleep = options.sleep ?? defaultSleep;
  const maxWaitMs = options.maxPaceWaitMs ?? 1_000;
  const teamsWork = new TenantWorkRunner({ pacer, maxWaitMs, clock, sleep });
  // infra/main.bicep sets the queue's max delivery count from the same value.
  const policy: RetryPolicy = {
    maxAttempts: config.maxDeliveryAttempts,
    random: options.random ?? Math.random,
  };
  const claims = new DeliveryClaims({
    holders: options.claimHolders ?? claimHoldersFor(config),
    leaseMs: options.claimLeaseMs ?? 120_000,
    clock,
  });
  const teamsAppId = config.graph.teamsAppId;
  const installer =
    config.graph.proactiveInstall && teamsAppId !== undefined
      ? new ProactiveInstaller({
          graph,
          catalog: lazy(
            () =>
              new CatalogAppIds(graph(), {
                teamsAppId,
                teamsAppCatalogId: config.graph.teamsAppCatalogId,
              }),
          ),
          users,
          ledger,
          welcomes: new WelcomeLedger(tables, { leaseMs: config.welcomeLeaseMs, clock }),
          connector,
          graphWork: new TenantWorkRunner({
            pacer:
              options.pacing === false
                ? undefined
                : new Pacer({
                    perTenant: [GRAPH_INSTALL_PER_APP_PER_TENANT],
                    perConversation: [],
                    now: () => clock().getTime(),
                  }),
            maxWaitMs,
            clock,
            sleep,
          }),
          teamsWork,
          policy,
          clock,
        })
      : undefined;

  const contents = new RequestContents(requestStore, () => clock().getTime());
  const contentMaxAgeMs = options.contentMaxAgeMs ?? 1_000;
  const operations = new TeamsOperations({ connector, users, work: teamsWork });
  const copyLedger = new CopyLedger(ledger, clock);
  const delivery = new DeliveryService({
    contents,
    contentMaxAgeMs,
    queue,
    requests: requestStore,
    ledger,
    users,
    work: teamsWork,
    operations,
    policy,
    claims,
    recorder: new DeliveryRecorder({
      ledger,
      users,
      queue,
      claims,
      clock,
      maxDeliveryCount: config.maxDeliveryAttempts,
    }),
    installer,
    clock,
  });
  const dispatcher = new Dispatcher({
    groups: graphGroupDirectory(graph),
    policy,
    requests: requestStore,
    ledger,
    teams: options.teams ?? new TeamStore(tables, clock),
    delivery,
    queue,
    maxDeliveryCount: config.maxDeliveryAttempts,
    clock,
  });
  const status = new NotificationStatusReader(requestStore, ledger);

  const revisions = new NotificationRevisions({ requests: requestStore, work: queue, clock });
  const intake = new NotificationIntake({
    requests: requestStore,
    work: queue,
    clock,
    maxDeliveryCount: config.maxDeliveryAttempts,
    revisions,
  });
  const passes = new RevisionPasses({
    requests: requestStore,
    ledger,
    copies: copyLedger,
    contents,
    queue,
    clock,
  });
  const copies = new CopyChanges({
    ledger,
    copies: copyLedger,
    users,
    contents,
    work: teamsWork,
    operations,
    policy,
    claims,
    queue,
    clock,
    contentMaxAgeMs,
  });

  const workHandlers = {
    dispatch: async (body: unknown, info: QueueMessageInfo, log: Logger) => {
      const work = parseWork(dispatchWorkSchema, "dispatch", body, log);
      return work === undefined ? undefined : dispatcher.handle(work, info, log);
    },
    delivery: async (body: unknown, info: QueueMessageInfo, log: Logger) => {
      const work = parseWork(deliveryWorkSchema, "delivery", body, log);
      if (work === undefined) return undefined;
      return delivery.deliver(
        work,
        info,
        log.with({ requestId: work.requestId, correlationId: work.correlationId }),
      );
    },
    revision: async (body: unknown, _info: QueueMessageInfo, log: Logger) => {
      const work = parseWork(revisionWorkSchema, "revision", body, log);
      if (work === undefined) return undefined;
      return passes.run(
        work,
        log.with({ requestId: work.requestId, correlationId: work.correlationId }),
      );
    },
    copy: async (body: unknown, info: QueueMessageInfo, log: Logger) => {
      const work = parseWork(copyWorkSchema, "copy", body, log);
      if (work === undefined) return undefined;
      return copies.change(
        work,
        info,
        log.with({ requestId: work.requestId, correlationId: work.correlationId }),
      );
    },
  };

  const deadLetters = new DeadLetterRecorder({
    requests: requestStore,
    ledger,
    copies: new DeadLetterCopies(tables),
    clock,
  });

  return {
    dispatcher,
    delivery,
    intake,
    status,
    revisions,
    pacer,
    teamsWork,
    workHandlers,
    queue,
    deadLetters,
  };
}

/**
 * With the local broker (no Service Bus configured, not in Azure) every consumer is a process
 * on this machine, so a dead claim holder can be told from its pid; elsewhere it cannot.
 */
function claimHoldersFor(config: Config): ClaimHolders {
  return config.serviceBus.kind === "none" && !config.runningInAzure
    ? localProcessHolders()
    : remoteHolders();
}
