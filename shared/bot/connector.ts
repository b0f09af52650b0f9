import {
  type Activity,
  ActivityTypes,
  type CloudAdapter,
  type ConversationParameters,
  TurnContext,
} from "botbuilder";
// Type only: botbuilder builds these clients but does not re-export their type.
import type { ConnectorClient, ConnectorFactory } from "botframework-connector";

import { withoutRetries } from "../connector/single-attempt";
import { statusCodeOf } from "../errors";
import type { Logger } from "../logging";

/** Posts an activity as a new message (not a reply) to a conversation; answers its id. */
export type ConversationSender = (
  conversationId: string,
  activity: Partial<Activity>,
) => Promise<string | undefined>;

const SINGLE_ATTEMPT_CLIENT = Symbol("herald.singleAttemptConnector");

/**
 * This turn's single-attempt connector client: what botbuilder made for the turn (same
 * connector factory, so the same credentials, service URL and audience), without its in-call
 * retries (see connector/single-attempt.ts, shared with the notification processor). Made once
 * per turn, on first use.
 *
 * Herald's own sends go through it: the welcome (whose failure the scheduled `welcome-check`
 * retries), the relayed 1:1 messages and the conversations they need (whose failure the asker
 * is told about), and the replies (see `replySafely`). One call each: a 503 or a 429 with a
 * long Retry-After must not hold Teams' HTTP request for seconds (Teams gives up at 15 s and
 * delivers the activity again). Reads (`TeamsInfo` member lookups, the roster pages) stay on
 * the turn's own client and keep botbuilder's retries: a lost read has no later retry, and a
 * roster sync runs on the queue, not in Teams' request.
 */
export function singleAttemptConnectorOf(
  context: TurnContext,
  logger?: Logger,
): Promise<ConnectorClient> {
  let client = context.turnState.get<Promise<ConnectorClient> | undefined>(SINGLE_ATTEMPT_CLIENT);
  if (client === undefined) {
    const adapter = context.adapter as CloudAdapter;
    const factory = context.turnState.get<ConnectorFactory | undefined>(
      adapter.ConnectorFactoryKey,
    );
    if (factory === undefined) throw new Error("botbuilder gave this turn no connector factory");
    // undefined: the factory's default scope, as botbuilder itself does for proactive turns.
    const audience = context.turnState.get<string | undefined>(adapter.OAuthScopeKey);
    client = factory
      .create(context.activity.serviceUrl, audience)
      .then((created) => withoutRetries(created, logger));
    context.turnState.set(SINGLE_ATTEMPT_CLIENT, client);
  }
  return client;
}

/**
 * A single-attempt sender on this turn. `context.sendActivity` would post a *reply* to the
 * inbound activity; a welcome or a relayed message is a new post of its own.
 */
export function senderFor(context: TurnContext, logger?: Logger): ConversationSender {
  return async (conversationId, activity) => {
    const client = await singleAttemptConnectorOf(context, logger);
    const response = await client.conversations.sendToConversation(conversationId, {
      type: "message",
      ...activity,
      conversation: { id: conversationId } as Activity["conversation"],
    });
    return response.id;
  };
}

export interface PersonalConversationRequest {
  /** The bot's Teams id (`28:…`), as the inbound activity's recipient carries it. */
  botId: string;
  tenantId: string;
  teamsUserId: string;
}

/**
 * Creates (or, as Teams does, returns the existing) 1:1 conversation between the bot and a
 * user, in one call on this turn's service URL: `POST /v3/conversations` with the user's `29:`
 * id, the tenant and `isGroup: false`. The same call `CloudAdapter.createConversationAsync`
 * makes, without its retrying client and the extra turn it runs.
 */
export async function createPersonalConversation(
  context: TurnContext,
  r: PersonalConversationRequest,
  logger?: Logger,
): Promise<string> {
  const parameters: ConversationParameters = {
    isGroup: false,
    bot: { id: r.botId, name: "" },
    members: [{ id: r.teamsUserId, name: "" }],
    tenantId: r.tenantId,
    channelData: { tenant: { id: r.tenantId } },
  };
  const client = await singleAttemptConnectorOf(context, logger);
  const created = await client.conversations.createConversation(parameters);
  if (created.id === undefined || created.id === "") {
    throw new Error("Teams created a conversation but answered no id");
  }
  return created.id;
}

/**
 * Replies in the conversation of the turn, in one call; a failure is logged, not thrown. For
 * answers whose loss is cheaper than Teams retrying the whole activity (which would redo the
 * work before it, such as relaying a message twice).
 *
 * Decision: replies are single-attempt too, so they do not go through `context.sendActivity`
 * (whose adapter posts with the turn's retrying client: a 429 with Retry-After 30 would hold
 * Teams' request past its 15 s limit). The reply is addressed as TurnContext addresses one
 * (`applyConversationReference`: conversation, from/recipient swapped, `replyToId`) and posted
 * as CloudAdapter posts one (`replyToActivity`). Herald registers no `onSendActivities` hooks
 * and Teams does not ask for `expectReplies`, the two things this path leaves out.
 */
export async function replySafely(
  context: TurnContext,
  activity: Partial<Activity> | string,
  logger: Logger,
): Promise<void> {
  try {
    const reply = TurnContext.applyConversationReference(
      {
        type: ActivityTypes.Message,
        ...(typeof activity === "string" ? { text: activity } : activity),
      },
      TurnContext.getConversationReference(context.activity),
    );
    const conversationId = reply.conversation?.id;
    if (conversationId === undefined) throw new Error("the turn has no conversation to reply in");
    const client = await singleAttemptConnectorOf(context, logger);
    if (reply.replyToId !== undefined && reply.replyToId !== "") {
      await client.conversations.replyToActivity(conversationId, reply.replyToId, reply);
    } else {
      await client.conversations.sendToConversation(conversationId, reply);
    }
  } catch (error) {
    logger.warn("Reply could not be delivered", { reason: describeFailure(error) });
  }
}

/** Teams' error code (`ConversationNotFound`, `ConversationBlockedByUser`, …) of a connector error. */
export function teamsErrorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const e = error as {
    code?: unknown;
    body?: { error?: { code?: unknown } };
    response?: { parsedBody?: { error?: { code?: unknown } }; bodyAsText?: unknown };
  };
  const candidates = [e.body?.error?.code, e.response?.parsedBody?.error?.code, e.code];
  for (const c of candidates) if (typeof c === "string" && c !== "") return c;
  if (typeof e.response?.bodyAsText === "string") {
    try {
      const parsed = JSON.parse(e.response.bodyAsText) as { error?: { code?: unknown } };
      if (typeof parsed.error?.code === "string") return parsed.error.code;
    } catch {
      // not JSON: no code to report
    }
  }
  return undefined;
}

/** A short, secret-free description of a connector failure for logs and ledger rows. */
export function describeFailure(error: unknown): string {
  const status = statusCodeOf(error);
  const code = teamsErrorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return [status, code].filter((p) => p !== undefined).join(" ") || message.slice(0, 200);
}
