import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";

import type { BotServices } from "./bot/create-bot-services";
import { welcomeCheckJobSchema } from "./bot/welcome-target";
import { type Config, loadConfig } from "./config";
import { ServiceUrlRefusedError } from "./connector/service-url-policy";
import { consoleLogger, type Logger } from "./logging";
import { intakeWithChanges } from "./notifications/queue-changes";
import {
  createDeadLetterQueueHandler,
  createIntakeQueueHandler,
  createWorkQueueHandler,
  type WorkHandler,
  type WorkHandlers,
} from "./notifications/queue-handler";
import {
  createNotificationServices,
  lazy,
  type NotificationServices,
  type NotificationServicesOptions,
  parseWork,
} from "./notifications/services";
import {
  relayWorkSchema,
  rosterSyncWorkSchema,
  welcomeWorkSchema,
  WORK_KINDS,
} from "./notifications/work-items";
import { createWorkQueue } from "./queue/create-queue";
import { TableFactory } from "./store/table-factory";

export interface HeraldServicesOptions extends NotificationServicesOptions {
  /** Members per roster page (default 500, Teams' maximum). */
  readonly rosterPageSize?: number;
  /** Test seam: where Bot Framework signing keys come from (stands in for Entra ID). */
  readonly openIdMetadataUrl?: string;
}

type QueueTrigger = (message: unknown, context: InvocationContext) => Promise<void>;

/** Everything one Functions process runs, built once (see `processServices`). */
export interface HeraldServices {
  readonly config: Config;
  readonly notifications: NotificationServices;
  /** The bot's services; botbuilder is loaded on first use. */
  readonly bot: () => BotServices;
  /** `POST|HEAD /api/messages`. */
  readonly messages: (
    request: HttpRequest,
    context: InvocationContext,
  ) => Promise<HttpResponseInit>;
  /** The intake queue trigger (LOB notification requests). */
  readonly intake: QueueTrigger;
  /** The work queue trigger (session-enabled: one tenant per session). */
  readonly work: QueueTrigger;
  /** The dead-letter subqueues' triggers: record what reached them, and keep it. */
  readonly deadLetters: { readonly intake: QueueTrigger; readonly work: QueueTrigger };
  readonly workHandlers: WorkHandlers;
}

/**
 * A bot work item's handler: parse the body (malformed: logged and dropped), run it in the
 * tenant's session. A stored service URL the policy refuses is logged and dropped too: no
 * retry would make it a Teams host.
 */
function botWork<T>(
  kind: string,
  schema: Parameters<typeof parseWork<T>>[0],
  run: (work: T, log: Logger) => Promise<unknown>,
): WorkHandler {
  return async (body, _info, log) => {
    const work = parseWork(schema, kind, body, log);
    if (work === undefined) return undefined;
    try {
      return await run(work, log);
    } catch (error) {
      if (!(error instanceof ServiceUrlRefusedError)) throw error;
      log.error("Bot work item dropped: its stored service URL is not allowed", {
        reason: error.reason,
      });
      return undefined;
    }
  };
}

/**
 * The process's one composition root: tables, the work queue, the tenant pacer (shared by
 * deliveries and the bot's work, so one session's calls are paced together), the notification
 * pipeline and the bot. Heavy parts load on first use: botbuilder only for the bot's endpoint
 * and work, the Service Bus SDK only when something is sent.
 */
export function createHeraldServices(
  config: Config,
  logger: Logger,
  options: HeraldServicesOptions = {},
): HeraldServices {
  const tables = options.tables ?? new TableFactory(config);
  const given = options.queue;
  const workQueue = given !== undefined ? () => given : lazy(() => createWorkQueue(config));
  const notifications = createNotificationServices(config, logger, {
    ...options,
    tables,
    queue: {
      enqueue: (m) => workQueue().enqueue(m),
      schedule: (m, at) => workQueue().schedule(m, at),
    },
  });
  const bot = lazy((): BotServices => {
    /* eslint-disable @typescript-eslint/no-require-imports -- lazy: keeps botbuilder off the other functions' cold start */
    const { createBotServices } =
      require("./bot/create-bot-services") as typeof import("./bot/create-bot-services");
    /* eslint-enable @typescript-eslint/no-require-imports */
    return createBotServices(config, logger, workQueue(), {
      tables,
      pace: (tenantId, conversationId) =>
        notifications.teamsWork.waitForSlot(tenantId, conversationId),
      cardClicks: notifications.cardClicks,
      ...(options.clock !== undefined ? { clock: options.clock } : {}),
      ...(options.rosterPageSize !== undefined ? { rosterPageSize: options.rosterPageSize } : {}),
      ...(options.openIdMetadataUrl !== undefined
        ? { openIdMetadataUrl: options.openIdMetadataUrl }
        : {}),
    });
  });
  const workHandlers: WorkHandlers = {
    [WORK_KINDS.dispatch]: notifications.workHandlers.dispatch,
    [WORK_KINDS.delivery]: notifications.workHandlers.delivery,
    [WORK_KINDS.revision]: notifications.workHandlers.revision,
    [WORK_KINDS.copy]: notifications.workHandlers.copy,
    [WORK_KINDS.intakeCheck]: notifications.workHandlers.intakeCheck,
    [WORK_KINDS.rosterSync]: botWork(WORK_KINDS.rosterSync, rosterSyncWorkSchema, (w, log) =>
      bot().syncTeamRoster(w, log),
    ),
    [WORK_KINDS.welcome]: botWork(WORK_KINDS.welcome, welcomeWorkSchema, (w, log) =>
      bot().welcome(w, log),
    ),
    [WORK_KINDS.welcomeCheck]: botWork(WORK_KINDS.welcomeCheck, welcomeCheckJobSchema, (w, log) =>
      bot().checkWelcome(w, log),
    ),
    [WORK_KINDS.relay]: botWork(WORK_KINDS.relay, relayWorkSchema, (w, log) => bot().relay(w, log)),
    [WORK_KINDS.completionCheck]: notifications.workHandlers.completionCheck,
    [WORK_KINDS.readReceipt]: notifications.workHandlers.readReceipt,
    [WORK_KINDS.webhook]: notifications.workHandlers.webhook,
  };
  return {
    config,
    notifications,
    bot,
    messages: (request, context) => bot().handle(request, context),
    intake: createIntakeQueueHandler(() =>
      intakeWithChanges(notifications.intake, notifications.revisions),
    ),
    work: createWorkQueueHandler(() => workHandlers),
    deadLetters: {
      intake: createDeadLetterQueueHandler(() => notifications.deadLetters, {
        kind: "intake",
        name: config.queueName,
      }),
      work: createDeadLetterQueueHandler(() => notifications.deadLetters, {
        kind: "work",
        name: config.workQueueName,
      }),
    },
    workHandlers,
  };
}

let processWide: HeraldServices | undefined;

/** The services of this Functions process, built on the first invocation from its settings. */
export function processServices(): HeraldServices {
  return (processWide ??= createHeraldServices(
    loadConfig(),
    consoleLogger({ component: "herald" }),
  ));
}
