import type { HttpHandler } from "@azure/functions";

import type { BotServices } from "../shared/bot/create-bot-services";
import { loadConfig } from "../shared/config";
import { consoleLogger } from "../shared/logging";
import { registerHttp } from "../shared/registry";

let services: BotServices | undefined;

/**
 * The process's one composition root for the bot, built on the first request. botbuilder
 * and the queue client are required here, not at the top of the file, so the other
 * functions of the app do not pay for loading them at cold start.
 */
function botServices(): BotServices {
  if (services === undefined) {
    const config = loadConfig();
    const logger = consoleLogger({ component: "bot" });
    /* eslint-disable @typescript-eslint/no-require-imports -- lazy: keeps botbuilder off other functions' cold start */
    const { createBotServices } =
      require("../shared/bot/create-bot-services") as typeof import("../shared/bot/create-bot-services");
    const { createQueue } =
      require("../shared/queue/create-queue") as typeof import("../shared/queue/create-queue");
    /* eslint-enable @typescript-eslint/no-require-imports */
    services = createBotServices(config, logger, createQueue(config));
  }
  return services;
}

/** The handler over given services: tests build their own (Azurite, simulator, memory queue). */
export function createMessagesHandler(getServices: () => BotServices): HttpHandler {
  return (request, context) => getServices().handle(request, context);
}

/** `POST /api/messages`: Teams (through the Bot Connector) posts activities here. */
export const messages: HttpHandler = createMessagesHandler(botServices);

registerHttp("messages", {
  methods: ["POST", "HEAD"],
  authLevel: "anonymous",
  route: "messages",
  handler: messages,
});
