import type { InvocationContext } from "@azure/functions";

import { processServices } from "../shared/process-services";
import { registerServiceBusQueue } from "../shared/registry";

/**
 * The LOB-facing intake queue: notification requests only. A message carrying Herald's
 * internal markers is refused and recorded, never run.
 */
export const notifications = (message: unknown, context: InvocationContext): Promise<void> =>
  processServices().intake(message, context);

registerServiceBusQueue("notifications", {
  queueName: "%NotificationsQueueName%",
  connection: "ServiceBusConnection",
  handler: notifications,
});
