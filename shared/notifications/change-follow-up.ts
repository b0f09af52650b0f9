import type { QueuePort } from "../queue/queue-port";
import { copyMessage } from "./change-work-items";
import type { RequestContent } from "./request-contents";
import type { DeliveryWork } from "./work-items";

/**
 * A copy just sent as `revision` while its request changed (an update or a recall accepted
 * during the send, and known to this process as `latest`): its change is queued at once, so the
 * copy is replaced or deleted as soon as its send returns. What this process does not know yet,
 * the change's pass finds on the row (revision-pass.ts).
 */
export async function followChange(
  queue: () => QueuePort,
  latest: RequestContent | undefined,
  work: DeliveryWork,
  revision: number,
): Promise<void> {
  if (latest === undefined || (!latest.recalled && latest.revision <= revision)) return;
  await queue().enqueue([
    copyMessage({
      tenantId: work.tenantId,
      requestId: work.requestId,
      recipient: work.recipient,
      operation: latest.recalled ? "recall" : "update",
      revision: latest.revision,
      attempt: 1,
      ...(work.correlationId !== undefined ? { correlationId: work.correlationId } : {}),
    }),
  ]);
}
