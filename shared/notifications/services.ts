import type { Config } from "../config";
import type { TeamsConnector } from "../connector/teams-connector";
import { ValidationError } from "../errors";
import type { Logger } from "../logging";
import { createQueue } from "../queue/create-queue";
import type { QueuePort } from "../queue/queue-port";
import { DeliveryLedger } from "../store/delivery-ledger";
import { NotificationRequestStore } from "../store/notification-requests";
import { TableFactory } from "../store/table-factory";
import { TeamStore } from "../store/teams";
import { UserReferenceStore } from "../store/user-references";
import { DeliveryService, type UserDirectory } from "./delivery";
import { NotificationIntake } from "./intake";
import { Pacer, type PacerOptions } from "./pacing";
import { RequestProcessor, type TeamDirectory } from "./processor";
import type { WorkHandlers } from "./queue-handler";
import { NotificationStatusReader } from "./status";
import { deliveryWorkSchema, WORK_KINDS } from "./work-items";

export interface NotificationServicesOptions {
  /** The queue to send to (default: `createQueue(config)`, built on first use). */
  readonly queue?: QueuePort;
  /** The Teams connector (default: botbuilder's, loaded on first use). */
  readonly connector?: TeamsConnector;
  readonly tables?: TableFactory;
  readonly users?: UserDirectory;
  readonly teams?: TeamDirectory;
  /** Pacing limits, or `false` to turn pacing off (benchmarks of raw overhead only). */
  readonly pacing?: PacerOptions | false;
  /** The bot's Teams id `28:…` for conversation creation when no app id is configured. */
  readonly botId?: string;
  /** Runs `roster-sync` work items (the bot endpoint's `syncTeamRoster`). */
  readonly rosterSync?: (job: unknown, log: Logger) => Promise<unknown>;
  /** Runs `welcome-check` work items (the bot endpoint's `checkWelcome`). */
  readonly welcomeCheck?: (job: unknown, log: Logger) => Promise<unknown>;
  readonly clock?: () => Date;
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly claimLeaseMs?: number;
  readonly maxPaceWaitMs?: number;
}

export interface NotificationServices {
  readonly requests: RequestProcessor;
  readonly delivery: DeliveryService;
  readonly intake: NotificationIntake;
  readonly status: NotificationStatusReader;
  /** The notifications queue's dispatch table (see queue-handler.ts). */
  readonly workHandlers: WorkHandlers;
  readonly queue: () => QueuePort;
}

/**
 * Runs a bot work item (its runner validates the body). Invalid: only Herald writes these, so a
 * malformed one is a bug no retry would fix: logged and dropped. Anything else thrown is left
 * to the broker's redelivery.
 */
async function botJob(
  kind: string,
  run: ((job: unknown, log: Logger) => Promise<unknown>) | undefined,
  body: unknown,
  log: Logger,
): Promise<unknown> {
  if (run === undefined) throw new Error(`${kind} work arrived but nothing runs it here`);
  try {
    return await run(body, log);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    log.error(`Invalid ${kind} job dropped`, { error: error.message });
    return undefined;
  }
}

function lazy<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
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
    options.queue !== undefined ? () => options.queue! : lazy(() => createQueue(config));
  const connector =
    options.connector !== undefined
      ? () => options.connector!
      : lazy((): TeamsConnector => {
          /* eslint-disable @typescript-eslint/no-require-imports -- lazy: botbuilder costs ~450 ms to load and only the queue trigger needs it */
          const { BotbuilderConnector, botFrameworkAuthentication } =
            require("../connector/botbuilder-connector") as typeof import("../connector/botbuilder-connector");
          /* eslint-enable @typescript-eslint/no-require-imports */
          const appId = config.bot.kind === "authenticated" ? config.bot.appId : undefined;
          const botId = appId !== undefined ? `28:${appId}` : options.botId;
          return new BotbuilderConnector(botFrameworkAuthentication(config), appId, {
            botId,
            logger,
          });
        });
  const pacer = options.pacing === false ? undefined : new Pacer(options.pacing ?? {});

  const delivery = new DeliveryService({
    requests: requestStore,
    ledger,
    users: options.users ?? new UserReferenceStore(tables, clock),
    connector,
    queue,
    pacer,
    maxAttempts: config.maxDeliveryAttempts,
    // infra/main.bicep sets the queue's max delivery count from the same value.
    maxDeliveryCount: config.maxDeliveryAttempts,
    clock,
    ...(options.random !== undefined ? { random: options.random } : {}),
    ...(options.sleep !== undefined ? { sleep: options.sleep } : {}),
    ...(options.claimLeaseMs !== undefined ? { claimLeaseMs: options.claimLeaseMs } : {}),
    ...(options.maxPaceWaitMs !== undefined ? { maxPaceWaitMs: options.maxPaceWaitMs } : {}),
  });
  const requests = new RequestProcessor({
    requests: requestStore,
    ledger,
    teams: options.teams ?? new TeamStore(tables, clock),
    delivery,
    queue,
    maxDeliveryCount: config.maxDeliveryAttempts,
    clock,
  });
  const status = new NotificationStatusReader(requestStore, ledger);
  const intake = new NotificationIntake(requestStore, queue, status, clock);

  const workHandlers: WorkHandlers = {
    request: (body, info, log) => requests.handle(body, info, log),
    [WORK_KINDS.delivery]: async (body, info, log) => {
      const parsed = deliveryWorkSchema.safeParse(body);
      if (!parsed.success) {
        // Only Herald writes these; a malformed one is a bug that no retry would fix.
        log.error("Malformed delivery work item dropped", {
          errors: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
        });
        return;
      }
      const work = parsed.data;
      return delivery.deliver(
        work,
        info,
        log.with({ requestId: work.requestId, correlationId: work.correlationId }),
      );
    },
    [WORK_KINDS.rosterSync]: (body, _info, log) =>
      botJob(WORK_KINDS.rosterSync, options.rosterSync, body, log),
    [WORK_KINDS.welcomeCheck]: (body, _info, log) =>
      botJob(WORK_KINDS.welcomeCheck, options.welcomeCheck, body, log),
  };

  return { requests, delivery, intake, status, workHandlers, queue };
}
