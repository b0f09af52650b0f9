import type { InvocationContext } from "@azure/functions";

import { processServices } from "../shared/process-services";
import { registerServiceBusQueue } from "../shared/registry";

/**
 * The dead-letter subqueues of both queues. What reaches them is recorded where a sender looks
 * (the recipient or the request ends `failed` with the broker's reason) and kept for the
 * operator (the DeadLetters table): no request waits forever on work that will never run.
 * The work queue's dead-letter subqueue is read without sessions, as Service Bus requires.
 */
export const intakeDeadLetters = (message: unknown, context: InvocationContext): Promise<void> =>
  processServices().deadLetters.intake(message, context);

export const workDeadLetters = (message: unknown, context: InvocationContext): Promise<void> =>
  processServices().deadLetters.work(message, context);

registerServiceBusQueue("notifications-dead-letters", {
  queueName: "%NotificationsQueueName%/$DeadLetterQueue",
  connection: "ServiceBusConnection",
  handler: intakeDeadLetters,
});

registerServiceBusQueue("work-dead-letters", {
  queueName: "%WorkQueueName%/$DeadLetterQueue",
  connection: "ServiceBusConnection",
  handler: workDeadLetters,
});
