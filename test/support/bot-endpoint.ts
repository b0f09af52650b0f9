import type { HttpHandler, LogHandler } from "@azure/functions";

import { type RunningHttpHost, startHttpHost } from "../../shared/local-host/http-host";

export interface BotEndpoint {
  /** `http://127.0.0.1:<port>/api/messages`. */
  readonly url: string;
  readonly host: RunningHttpHost;
  close(): Promise<void>;
}

/**
 * One handler served as the bot's `POST /api/messages` on a free loopback port, the way the
 * Functions host serves `functions/messages.ts`: for stand-ins (the Graph simulator) that post
 * Teams' activities to Herald over HTTP.
 */
export async function startBotEndpoint(
  handler: HttpHandler,
  logHandler: LogHandler = () => {},
): Promise<BotEndpoint> {
  const host = await startHttpHost({
    registrations: [
      {
        kind: "http",
        name: "messages",
        options: { route: "messages", methods: ["POST"], authLevel: "anonymous", handler },
      },
    ],
    port: 0,
    logHandlerFor: () => logHandler,
  });
  const route = host.routes[0];
  if (route === undefined) throw new Error("bot endpoint: no messages route");
  return { url: host.urlOf(route), host, close: () => host.close() };
}
