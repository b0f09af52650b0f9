import type { Activity, CloudAdapter, ConversationReference, TurnContext } from "botbuilder";

import { type ServiceUrlPolicy, ServiceUrlRefusedError } from "../connector/service-url-policy";
import type { Logger } from "../logging";
import { type ConversationSender, senderFor } from "./connector";

/**
 * Waits for the tenant's next pacing slot (and the conversation's, for a send): every Teams call
 * of a bot work item takes one, from the same pacer as deliveries, so installs, relays and
 * roster syncs stay inside the tenant's budget too.
 */
export type PaceCall = (tenantId: string, conversationId?: string) => Promise<void>;

/** What a bot work item needs to act in a conversation with no inbound activity. */
export interface ProactiveDeps {
  readonly adapter: CloudAdapter;
  /** "" when anonymous (local); the bot's app id otherwise. */
  readonly botAppId: string;
  readonly serviceUrls: ServiceUrlPolicy;
  readonly pace: PaceCall;
}

export interface ConversationAt {
  readonly tenantId: string;
  /** From Herald's stored team or user reference, never from a queue message. */
  readonly serviceUrl: string;
  readonly conversationId: string;
  readonly scope: "personal" | "channel" | "groupChat";
}

/**
 * Runs `logic` in a proactive turn on the conversation (botbuilder's `continueConversationAsync`),
 * after the service URL policy allowed the call: a refused URL throws `ServiceUrlRefusedError`
 * before any request leaves (and before botbuilder fetches a token for it).
 */
export async function inConversation(
  deps: ProactiveDeps,
  at: ConversationAt,
  logic: (context: TurnContext) => Promise<void>,
): Promise<void> {
  const verdict = deps.serviceUrls.check(at.serviceUrl);
  if (!verdict.ok) throw new ServiceUrlRefusedError(verdict.reason);
  const reference: Partial<ConversationReference> = {
    channelId: "msteams",
    serviceUrl: at.serviceUrl,
    conversation: {
      id: at.conversationId,
      isGroup: at.scope !== "personal",
      conversationType: at.scope,
      tenantId: at.tenantId,
      name: "",
    },
  };
  await deps.adapter.continueConversationAsync(deps.botAppId, reference, logic);
}

/** A single-attempt sender on the turn that waits for a pacing slot before each post. */
export function pacedSender(
  context: TurnContext,
  deps: Pick<ProactiveDeps, "pace">,
  tenantId: string,
  logger: Logger,
): ConversationSender {
  const send = senderFor(context, logger);
  return async (conversationId: string, activity: Partial<Activity>) => {
    await deps.pace(tenantId, conversationId);
    return send(conversationId, activity);
  };
}
