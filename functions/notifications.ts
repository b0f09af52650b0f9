import type { InvocationContext } from "@azure/functions";

import type { BotServices } from "../shared/bot/create-bot-services";
import type { RosterSyncJob } from "../shared/bot/roster-sync";
import { loadConfig } from "../shared/config";
import { consoleLogger } from "../shared/logging";
import { createNotificationsQueueHandler } from "../shared/notifications/queue-handler";
import {
  createNotificationServices,
  type NotificationServices,
} from "../shared/notifications/services";
import { createQueue } from "../shared/queue/create-queue";
import type { QueuePort } from "../shared/queue/queue-port";
import { registerServiceBusQueue } from "../shared/registry";
import { TableFactory } from "../shared/store/table-factory";

let services: NotificationServices | undefined;

/**
 * The process's one composition root for the queue trigger, built on the first message.
 * The bot's services (botbuilder) are built only when a `roster-sync` or `welcome-check`
 * work item arrives.
 */
function notificationServices(): NotificationServices {
  if (services === undefined) {
    const config = loadConfig();
    const logger = consoleLogger({ component: "notifications" });
    const tables = new TableFactory(config);
    let queue: QueuePort | undefined;
    const sharedQueue = () => (queue ??= createQueue(config));
    let bot: BotServices | undefined;
    const botServices = (): BotServices => {
      if (bot === undefined) {
        /* eslint-disable @typescript-eslint/no-require-imports -- lazy: botbuilder only for the bot's work items */
        const { createBotServices } =
          require("../shared/bot/create-bot-services") as typeof import("../shared/bot/create-bot-services");
        /* eslint-enable @typescript-eslint/no-require-imports */
        bot = createBotServices(config, logger, sharedQueue(), { tables });
      }
      return bot;
    };
    services = createNotificationServices(config, logger, {
      tables,
      queue: {
        enqueue: (messages) => sharedQueue().enqueue(messages),
        schedule: (message, at) => sharedQueue().schedule(message, at),
      },
      // Both validate the job themselves (ValidationError: logged and dropped).
      rosterSync: (job, log) => botServices().syncTeamRoster(job as RosterSyncJob, log),
      welcomeCheck: (job, log) => botServices().checkWelcome(job, log),
    });
  }
  return services;
}

/**
 * The Service Bus trigger handler, as the host calls it: `(message, context)` with
 * `context.triggerMetadata` carrying `messageId`, `deliveryCount`, `applicationProperties`.
 * Tests build their own over test services with `createNotificationsQueueHandler`.
 */
export const notifications: (message: unknown, context: InvocationContext) => Promise<void> =
  createNotificationsQueueHandler(() => notificationServices().workHandlers);

registerServiceBusQueue("notifications", {
  queueName: "%NotificationsQueueName%",
  connection: "ServiceBusConnection",
  handler: notifications,
});
