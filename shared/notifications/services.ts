import type { z } from "zod";

import type { Config } from "../config";
import type { TeamsConnector } from "../connector/teams-connector";
import { EventLog } from "../events/event-log";
import { CatalogAppIds } from "../graph/catalog-app-ids";
import { FetchGraphClient } from "../graph/fetch-graph-client";
import { graphCredential } from "../graph/graph-credential";
import { GRAPH_INSTALL_PER_APP_PER_TENANT } from "../graph/graph-limits";
import type { GraphPort } from "../graph/graph-port";
import type { Logger } from "../logging";
import { createEventTopic, createWorkQueue } from "../queue/create-queue";
import type { QueuePort } from "../queue/queue-port";
import { DeadLetterCopies } from "../store/dead-letter-copies";
import { DeliveryLedger } from "../store/delivery-ledger";
import { NotificationRequestStore } from "../store/notification-requests";
import { TableFactory } from "../store/table-factory";
import { TeamStore } from "../store/teams";
import { UnreadIndex } from "../store/unread-index";
import { UserReferenceStore } from "../store/user-references";
import { WebhookState } from "../store/webhook-state";
import { WelcomeLedger } from "../store/welcome-ledger";
import { CardClicks } from "./card-clicks";
import { type ClaimHolders, localProcessHolders, remoteHolders } from "./claim-holders";
import { CompletionChecker } from "./completion-check";
import { CopyLedger } from "./copy-ledger";
import { DeadLetterRecorder } from "./dead-letter-recorder";
import { type DeliveryDependencies, DeliveryService } from "./delivery";
import { DeliveryClaims } from "./delivery-claims";
import { DeliveryRecorder } from "./delivery-recorder";
import { Dispatcher, type TeamDirectory } from "./dispatch";
import { EventOutbox } from "./event-outbox";
import { graphGroupDirectory } from "./group-directory";
import { NotificationIntake } from "./intake";
import { Pacer, type PacerOptions } from "./pacing";
import { type InstallUserDirectory, ProactiveInstaller } from "./proactive-install";
import type { WorkHandler } from "./queue-handler";
import { ReadReceipts } from "./read-receipts";
import type { RecipientUpdates } from "./recipient-updates";
import { RequestContents } from "./request-contents";
import type { RetryPolicy } from "./retry-policy";
import { type ChangeKind, createRevisionServices } from "./revision-services";
import type { NotificationRevisions } from "./revisions";
import { NotificationStatusReader } from "./status";
import { TeamsOperations } from "./teams-operations";
import { TenantWorkRunner } from "./tenant-work";
import { type FetchLike, WebhookDelivery } from "./webhook-delivery";
import { guardDeliveryWork, guardDispatchWork, guardedWork } from "./work-guards";
import {
  completionWorkSchema,
  intakeCheckWorkSchema,
  type QueueMessageInfo,
  readReceiptWorkSchema,
  webhookWorkSchema,
} from "./work-items";

export interface NotificationServicesOptions {
  /** The internal work queue (default: `createWorkQueue(config)`, built on first use). */
  readonly queue?: QueuePort;
  /** The events topic (default: `createEventTopic(config)`, built on first use). */
  readonly events?: QueuePort;
  /** How webhook POSTs are made (default: global fetch). */
  readonly fetch?: FetchLike;
  /** Microsoft Graph (default: the fetch client on `GraphEndpoint`, made on first use). */
  readonly graph?: GraphPort;
  /** The Teams connector (default: botbuilder's, loaded on first use). */
  readonly connector?: TeamsConnector;
  readonly tables?: TableFactory;
  readonly users?: DeliveryDependencies["users"] & InstallUserDirectory;
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
  /** How old queued work's request content may be (1 s): how soon an update reaches it. */
  readonly contentMaxAgeMs?: number;
}

export interface NotificationServices {
  readonly dispatcher: Dispatcher;
  readonly delivery: DeliveryService;
  readonly intake: NotificationIntake;
  readonly status: NotificationStatusReader;
  /** Updates and recalls of accepted requests (HTTP `PATCH`/`DELETE`, the intake queue). */
  readonly revisions: NotificationRevisions;
  readonly recipientUpdates: RecipientUpdates;
  /** The request's events, for the pull endpoint. */
  readonly eventLog: EventLog;
  readonly pacer: Pacer | undefined;
  /** The tenant's Teams calls under `pacer` (the bot's work waits for its slots here too). */
  readonly teamsWork: TenantWorkRunner;
  /** The work queue's handlers for the notification kinds. */
  readonly workHandlers: Readonly<
    Record<
      | "dispatch"
      | "delivery"
      | "intakeCheck"
      | "completionCheck"
      | "readReceipt"
      | "webhook"
      | ChangeKind,
      WorkHandler
    >
  >;
  readonly outbox: EventOutbox;
  /** The internal work queue. */
  readonly queue: () => QueuePort;
  readonly deadLetters: DeadLetterRecorder;
  /** Clicks on the buttons of cards Herald sent (the bot endpoint takes them). */
  readonly cardClicks: CardClicks;
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
  const topic =
    options.events !== undefined ? () => options.events! : lazy(() => createEventTopic(config));
  const outbox = new EventOutbox({
    enabled: config.events.enabled,
    topic,
    work: queue,
    webhook: config.events.webhook !== undefined,
  });
  const unread = new UnreadIndex(tables);
  const completion = new CompletionChecker({
    requests: requestStore,
    ledger,
    outbox,
    queue,
    clock,
  });
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
          outbox,
          clock,
        })
      : undefined;

  // What deliveries and the changes of sent copies share (request contents, the Teams calls).
  const shared = {
    requests: requestStore,
    ledger,
    users,
    work: teamsWork,
    policy,
    claims,
    queue,
    clock,
    contents: new RequestContents(requestStore, () => clock().getTime()),
    contentMaxAgeMs: options.contentMaxAgeMs ?? 1_000,
    operations: new TeamsOperations({ connector, users, work: teamsWork }),
  };
  const delivery = new DeliveryService({
    ...shared,
    recorder: new DeliveryRecorder({
      ledger,
      users,
      queue,
      claims,
      outbox,
      clock,
      maxDeliveryCount: config.maxDeliveryAttempts,
    }),
    outbox,
    unread,
    installer,
  });
  const dispatcher = new Dispatcher({
    groups: graphGroupDirectory(graph),
    policy,
    requests: requestStore,
    ledger,
    teams: options.teams ?? new TeamStore(tables, clock),
    delivery,
    outbox,
    completion,
    queue,
    maxDeliveryCount: config.maxDeliveryAttempts,
    clock,
  });
  const status = new NotificationStatusReader(requestStore, ledger);

  const copies = new CopyLedger(ledger, outbox, clock);
  const changes = createRevisionServices({ ...shared, copies, tables, parse: parseWork });
  const intake = new NotificationIntake({
    requests: requestStore,
    work: queue,
    outbox,
    clock,
    maxDeliveryCount: config.maxDeliveryAttempts,
  });
  const readReceipts = new ReadReceipts({ ledger, unread, outbox });
  const webhooks = new WebhookDelivery({
    webhook: config.events.webhook,
    state: new WebhookState(tables),
    queue,
    ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
    clock,
    random: options.random ?? Math.random,
  });
  const workHandlers = {
    dispatch: async (body: unknown, info: QueueMessageInfo, log: Logger) => {
      // Herald wrote it from a request the intake parsed: guarded, not parsed again.
      const work = guardedWork(guardDispatchWork, "dispatch", body, log);
      return work === undefined ? undefined : dispatcher.handle(work, info, log);
    },
    delivery: async (body: unknown, info: QueueMessageInfo, log: Logger) => {
      const work = guardedWork(guardDeliveryWork, "delivery", body, log);
      if (work === undefined) return undefined;
      return delivery.deliver(
        work,
        info,
        log.with({ requestId: work.requestId, correlationId: work.correlationId }),
      );
    },
    intakeCheck: async (body: unknown, _info: QueueMessageInfo, log: Logger) => {
      const work = parseWork(intakeCheckWorkSchema, "intake-check", body, log);
      return work === undefined ? undefined : intake.check(work);
    },
    completionCheck: async (body: unknown, _info: QueueMessageInfo, log: Logger) => {
      const work = parseWork(completionWorkSchema, "completion-check", body, log);
      return work === undefined
        ? undefined
        : completion.check(work, log.with({ requestId: work.requestId }));
    },
    readReceipt: async (body: unknown, _info: QueueMessageInfo, log: Logger) => {
      const work = parseWork(readReceiptWorkSchema, "read-receipt", body, log);
      return work === undefined ? undefined : readReceipts.apply(work, log);
    },
    webhook: async (body: unknown, info: QueueMessageInfo, log: Logger) => {
      const work = parseWork(webhookWorkSchema, "webhook", body, log);
      return work === undefined
        ? undefined
        : webhooks.run(work, info, log.with({ requestId: work.requestId }));
    },
    ...changes.handlers,
  };

  const deadLetters = new DeadLetterRecorder({
    requests: requestStore,
    ledger,
    copies: new DeadLetterCopies(tables),
    outbox,
    completion,
    clock,
  });

  return {
    dispatcher,
    delivery,
    intake,
    status,
    revisions: changes.revisions,
    recipientUpdates: changes.recipientUpdates,
    eventLog: new EventLog(requestStore, ledger),
    pacer,
    teamsWork,
    workHandlers,
    outbox,
    queue,
    deadLetters,
    cardClicks: new CardClicks({ requests: requestStore, ledger, outbox, queue, clock }),
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
