import type { HttpHandler } from "@azure/functions";

import { processServices } from "../shared/process-services";
import { registerHttp } from "../shared/registry";

/** `POST /api/messages`: Teams (through the Bot Connector) posts activities here. */
export const messages: HttpHandler = (request, context) =>
  processServices().messages(request, context);

registerHttp("messages", {
  methods: ["POST", "HEAD"],
  authLevel: "anonymous",
  route: "messages",
  handler: messages,
});
