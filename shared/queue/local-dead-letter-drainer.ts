import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { InvocationContext, type LogHandler, type ServiceBusQueueHandler } from "@azure/functions";

import { toError } from "../errors";
import type { LocalDeadLetterQueue } from "./dead-letters";
import type { QueueDrainer } from "./local-queue";

export interface DeadLetterDrainOptions {
  readonly functionName: string;
  readonly pollIntervalMs?: number;
  readonly logHandler: LogHandler;
}

/**
 * The local stand-in for a trigger bound to `<queue>/$DeadLetterQueue`: hands every dead letter
 * of the local queue to the handler once, as the Functions host would, and marks it handled
 * (`deadletter-handled/<id>`). Unlike Service Bus, the dead letter itself stays in the folder, so
 * `herald dlq` can still show and replay it. A handler that throws is offered it again at the
 * next poll.
 */
export function startDeadLetterDraining(
  queue: LocalDeadLetterQueue,
  handler: ServiceBusQueueHandler,
  options: DeadLetterDrainOptions,
): QueueDrainer {
  const handled = join(queue.path, "deadletter-handled");
  const pollMs = options.pollIntervalMs ?? 1_000;
  let running = true;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;

  const once = async () => {
    await mkdir(handled, { recursive: true });
    const done = new Set(await readdir(handled));
    for (const letter of await queue.deadLetterEntries()) {
      if (!running) return;
      // A session queue names its dead letters `<session folder>/<key>`: one file name each.
      const marker = encodeURIComponent(letter.id);
      if (done.has(marker)) continue;
      const context = new InvocationContext({
        functionName: options.functionName,
        triggerMetadata: {
          messageId: letter.messageId,
          correlationId: letter.correlationId,
          deliveryCount: letter.deliveryCount,
          enqueuedTimeUtc: letter.enqueuedTimeUtc.toISOString(),
          ...(letter.sessionId !== undefined ? { sessionId: letter.sessionId } : {}),
          deadLetterSource: queue.path,
          sequenceNumber: letter.id,
          applicationProperties: {
            ...letter.applicationProperties,
            DeadLetterReason: letter.deadLetterReason,
            DeadLetterErrorDescription: letter.deadLetterErrorDescription,
          },
        },
        logHandler: options.logHandler,
      });
      try {
        await handler(letter.body, context);
        await writeFile(join(handled, marker), "");
      } catch (error) {
        options.logHandler(
          "error",
          `Dead letter ${letter.id} not recorded; offered again: ${toError(error).message.slice(0, 300)}`,
        );
      }
    }
  };

  const loop = (async () => {
    while (running) {
      try {
        await once();
      } catch (error) {
        options.logHandler("error", `Dead-letter poll failed: ${toError(error).message}`);
      }
      if (!running) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, pollMs);
      });
    }
  })();

  return {
    stop: async () => {
      running = false;
      if (timer !== undefined) clearTimeout(timer);
      wake?.();
      await loop;
    },
  };
}
