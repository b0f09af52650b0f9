import type { Activity, CloudAdapter, ConversationParameters, TurnContext } from "botbuilder";
// Type only: botbuilder builds these clients but does not re-export their type.
import type { ConnectorClient } from "botframework-connector";

import { statusCodeOf } from "../errors";
import type { Logger } from "../logging";

/** Posts an activity as a new message (not a reply) to a conversation; answers its id. */
export type ConversationSender = (
  conversationId: string,
  activity: Partial<Activity>,
) => Promise<string | undefined>;

/** The connector client botbuilder made for this turn (inbound or proactive). */
export function connectorOf(context: TurnContext): ConnectorClient {
  const adapter = context.adapter as CloudAdapter;
  const client = context.turnState.get<ConnectorClient | undefined>(adapter.ConnectorClientKey);
  if (client === undefined) throw new Error("botbuilder gave this turn no connector client");
  return client;
}

/**
 * A sender on this turn's connector. `context.sendActivity` would post a *reply* to the
 * inbound activity; a welcome or a relayed message is a new post of its own.
 */
export function senderFor(context: TurnContext): ConversationSender {
  const client = connectorOf(context);
  return async (conversationId, activity) => {
    const response = await client.conversations.sendToConversation(conversationId, {
      type: "message",
      ...activity,
      conversation: { id: conversationId } as Activity["conversation"],
    });
    return response.id;
  };
}

export interface PersonalConversationRequest {
  adapter: CloudAdapter;
  botAppId: string;
  /** The bot's Teams id (`28:…`), as the inbound activity's recipient carries it. */
  botId: string;
  serviceUrl: string;
  tenantId: string;
  teamsUserId: string;
  /** The OAuth scope of the turn this runs in (undefined: the adapter's default). */
  audience: string | undefined;
}

/**
 * Creates (or, as Teams does, returns the existing) 1:1 conversation between the bot and a
 * user: `POST /v3/conversations` with the user's `29:` id, the tenant and `isGroup: false`.
 */
export async function createPersonalConversation(r: PersonalConversationRequest): Promise<string> {
  const parameters: ConversationParameters = {
    isGroup: false,
    bot: { id: r.botId, name: "" },
    members: [{ id: r.teamsUserId, name: "" }],
    tenantId: r.tenantId,
    channelData: { tenant: { id: r.tenantId } },
  };
  let conversationId: string | undefined;
  await r.adapter.createConversationAsync(
    r.botAppId,
    "msteams",
    r.serviceUrl,
    // Typed as string, but undefined means "the adapter's default scope" ("" would be a scope).
    r.audience as string,
    parameters,
    (context) => {
      conversationId = context.activity.conversation?.id;
      return Promise.resolve();
    },
  );
  if (conversationId === undefined || conversationId === "") {
    throw new Error("Teams created a conversation but answered no id");
  }
  return conversationId;
}

/**
 * Replies in the conversation of the turn; a failure is logged, not thrown. For answers whose
 * loss is cheaper than Teams retrying the whole activity (which would redo the work before it).
 */
export async function replySafely(
  context: TurnContext,
  activity: Partial<Activity> | string,
  logger: Logger,
): Promise<void> {
  try {
    await context.sendActivity(activity);
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
