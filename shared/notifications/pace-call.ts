import type { Pacer } from "./pacing";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Waits for the tenant's (and conversation's) next slot in `pacer`, however far off: for the
 * bot's work items, whose few calls run in the tenant's session and have no cheaper place to
 * wait (a delivery re-schedules long waits instead, see DeliveryService).
 */
export async function waitForSlot(
  pacer: Pacer | undefined,
  tenantId: string,
  conversationId?: string,
): Promise<void> {
  if (pacer === undefined) return;
  for (;;) {
    const grant = pacer.reserve(tenantId, conversationId);
    if (grant.delayMs > 0) await sleep(grant.delayMs);
    if (grant.granted) return;
  }
}
