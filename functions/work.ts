import type { InvocationContext } from "@azure/functions";

import { processServices } from "../shared/process-services";
import { registerServiceBusQueue } from "../shared/registry";

/**
 * Herald's internal work queue: deliveries, retries, roster syncs, welcomes, relays. Session-
 * enabled with the tenant as session id, so one instance at a time runs (and paces) a tenant.
 */
export const work = (message: unknown, context: InvocationContext): Promise<void> =>
  processServices().work(message, context);

registerServiceBusQueue("work", {
  queueName: "%WorkQueueName%",
  connection: "ServiceBusConnection",
  isSessionsEnabled: true,
  handler: work,
});
