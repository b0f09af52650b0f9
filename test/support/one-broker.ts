import type { InvocationContext } from "@azure/functions";

import type { HeraldServices } from "../../shared/composition";
import { WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";

/**
 * Both of Herald's triggers over one in-memory broker that stands in for both queues (the
 * chaos suite, the benchmark): a message Herald sent (it names its work kind) goes to the work
 * trigger, a LOB request to the intake trigger. Only for stand-ins whose producers are trusted:
 * in Azure the two are separate queues and a LOB app can reach only the intake one.
 */
export function oneBrokerTrigger(
  herald: Pick<HeraldServices, "intake" | "work">,
): (message: unknown, context: InvocationContext) => Promise<void> {
  return (message, context) => {
    const meta = (context.triggerMetadata ?? {}) as {
      applicationProperties?: Record<string, unknown>;
    };
    const internal = meta.applicationProperties?.[WORK_KIND_PROPERTY] !== undefined;
    return internal ? herald.work(message, context) : herald.intake(message, context);
  };
}
