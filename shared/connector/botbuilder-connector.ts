import {
  ConfigurationBotFrameworkAuthentication,
  ConfigurationServiceClientCredentialFactory,
} from "botbuilder";
import {
  AuthenticationConstants,
  type BotFrameworkAuthentication,
  ClaimsIdentity,
  type ConnectorClient,
  type ConnectorFactory,
} from "botframework-connector";
import { z } from "zod";

import type { BotEndpointSettings, BotIdentity } from "../bot-identity";
import type { Logger } from "../logging";
import { BoundedMap } from "../util/bounded-map";
import { type ServiceUrlPolicy, serviceUrlPolicy } from "./service-url-policy";
import { withoutRetries } from "./single-attempt";
import {
  type CallHooks,
  classifyConnectorError,
  type ConnectorFailure,
  type CreatePersonalConversation,
  type CreateResult,
  type DeleteActivity,
  type DeleteResult,
  type GetMember,
  type MemberResult,
  type SendActivity,
  type SendResult,
  type TeamsConnector,
  unreadableAnswer,
  type UpdateActivity,
  type UpdateResult,
} from "./teams-connector";
import { watchWire, withWireTimes } from "./wire-time";

export interface BotbuilderConnectorOptions {
  /** The bot's Teams id `28:<app id>`; sent as `bot` when creating conversations. */
  readonly botId?: string | undefined;
  /** Per-call timeout; a call that takes longer is a transient failure (default 15 s). */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
  /** Where calls may go (Teams' hosts; loopback when anonymous): anything else is refused. */
  readonly serviceUrls?: ServiceUrlPolicy;
}

/** The service URL policy of a configuration (see service-url-policy.ts). */
export function policyOf(config: BotEndpointSettings): ServiceUrlPolicy {
  return serviceUrlPolicy({
    authenticated: config.bot.kind === "authenticated",
    extraHosts: config.extraTeamsServiceHosts,
  });
}

const text = z.string().trim().min(1).max(1024);
/** What a create or a send answers: the new conversation's or activity's id. */
const resourceSchema = z.object({ id: text });
const memberSchema = z.object({
  id: text,
  aadObjectId: text.optional().catch(undefined),
  name: z.string().max(1024).optional().catch(undefined),
  userPrincipalName: text.optional().catch(undefined),
  email: text.optional().catch(undefined),
});

/** Connector clients kept (Teams has a handful of service URLs per cloud and region). */
const MAX_CLIENTS = 64;

/** The credentials botbuilder uses for outbound calls, from Herald's validated config. */
export function botFrameworkAuthentication(config: {
  readonly bot: BotIdentity;
}): BotFrameworkAuthentication {
  if (config.bot.kind === "anonymous") return new ConfigurationBotFrameworkAuthentication({});
  const bot = config.bot;
  return new ConfigurationBotFrameworkAuthentication(
    { MicrosoftAppId: bot.appId, MicrosoftAppTenantId: bot.tenantId },
    new ConfigurationServiceClientCredentialFactory({
      MicrosoftAppId: bot.appId,
      MicrosoftAppType: bot.appType,
      MicrosoftAppTenantId: bot.tenantId,
      ...(bot.password !== undefined ? { MicrosoftAppPassword: bot.password } : {}),
    }),
  );
}

/**
 * TeamsConnector on botbuilder's Bot Connector client (`POST /v3/conversations`,
 * `POST|PUT|DELETE /v3/conversations/{id}/activities[/{activityId}]`, the member lookup), with
 * botbuilder's credentials (managed identity or single-tenant secret; none for local anonymous
 * runs).
 *
 * Why the connector client and not `CloudAdapter.createConversationAsync`: the client
 * botbuilder builds retries inside the call (see single-attempt.ts). Herald retries by
 * re-scheduling the message instead, so this adapter makes the clients it creates (one per
 * service URL, reused) single-attempt, and every Teams answer reaches the processor exactly once.
 */
export class BotbuilderConnector implements TeamsConnector {
  private readonly factory: ConnectorFactory;
  /**
   * One client per service URL, LRU-bounded: service URLs come from stored references, and a
   * long-lived instance must not keep a client for every URL it ever saw.
   */
  private readonly clients = new BoundedMap<string, Promise<ConnectorClient>>(MAX_CLIENTS);
  private readonly timeoutMs: number;

  constructor(
    auth: BotFrameworkAuthentication,
    appId: string | undefined,
    private readonly options: BotbuilderConnectorOptions = {},
  ) {
    // The same identity CloudAdapter uses for proactive calls (see CloudAdapterBase).
    const identity = new ClaimsIdentity([
      { type: AuthenticationConstants.AudienceClaim, value: appId ?? "" },
      { type: AuthenticationConstants.AppIdClaim, value: appId ?? "" },
    ]);
    this.factory = auth.createConnectorFactory(identity);
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  static fromConfig(config: BotEndpointSettings, logger?: Logger): BotbuilderConnector {
    const appId = config.bot.kind === "authenticated" ? config.bot.appId : undefined;
    return new BotbuilderConnector(botFrameworkAuthentication(config), appId, {
      botId: appId !== undefined ? `28:${appId}` : undefined,
      serviceUrls: policyOf(config),
      ...(logger !== undefined ? { logger } : {}),
    });
  }

  createPersonalConversation(
    input: CreatePersonalConversation,
    hooks?: CallHooks,
  ): Promise<CreateResult> {
    return this.call(input.serviceUrl, hooks, async (client, abortSignal) => {
      const response = await client.conversations.createConversation(
        {
          isGroup: false,
          ...(this.options.botId !== undefined ? { bot: { id: this.options.botId } } : {}),
          members: [{ id: input.teamsUserId }],
          channelData: { tenant: { id: input.tenantId } },
          tenantId: input.tenantId,
        } as Parameters<ConnectorClient["conversations"]["createConversation"]>[0],
        { abortSignal },
      );
      const created = resourceSchema.safeParse(response);
      if (!created.success) return unreadableAnswer(response._response.status);
      return { kind: "created", conversationId: created.data.id };
    });
  }

  sendActivity(input: SendActivity, hooks?: CallHooks): Promise<SendResult> {
    return this.call(input.serviceUrl, hooks, async (client, abortSignal) => {
      const response = await client.conversations.sendToConversation(
        input.conversationId,
        input.activity,
        { abortSignal },
      );
      // Herald posts text or a card, never both, so Teams answers one id (an activity with both
      // is split and then none comes back): a send without one is an answer not understood.
      const sent = resourceSchema.safeParse(response);
      if (!sent.success) return unreadableAnswer(response._response.status);
      return { kind: "sent", activityId: sent.data.id };
    });
  }

  updateActivity(input: UpdateActivity, hooks?: CallHooks): Promise<UpdateResult> {
    return this.call(input.serviceUrl, hooks, async (client, abortSignal) => {
      await client.conversations.updateActivity(
        input.conversationId,
        input.activityId,
        { ...input.activity, id: input.activityId },
        { abortSignal },
      );
      return { kind: "updated" };
    });
  }

  deleteActivity(input: DeleteActivity, hooks?: CallHooks): Promise<DeleteResult> {
    return this.call(input.serviceUrl, hooks, async (client, abortSignal) => {
      await client.conversations.deleteActivity(input.conversationId, input.activityId, {
        abortSignal,
      });
      return { kind: "deleted" };
    });
  }

  getMember(input: GetMember): Promise<MemberResult> {
    return this.call(input.serviceUrl, undefined, async (client, abortSignal) => {
      const response = await client.conversations.getConversationMember(
        input.conversationId,
        input.memberId,
        { abortSignal },
      );
      // A Teams answer beyond botbuilder's ChannelAccount type (TeamsChannelAccount's fields).
      const member = memberSchema.safeParse(response);
      if (!member.success)
        return {
          kind: "failed",
          status: undefined,
          code: "InvalidMember",
          message: "Teams answered a member without a usable id",
        };
      const { id, aadObjectId, name, userPrincipalName, email } = member.data;
      return {
        kind: "found",
        member: { teamsUserId: id, aadObjectId, name, userPrincipalName, email },
      };
    });
  }

  /** One call to Teams under the deadline; Teams' answers become tagged failures, not throws. */
  private async call<T>(
    serviceUrl: string,
    hooks: CallHooks | undefined,
    send: (client: ConnectorClient, abortSignal: AbortSignal) => Promise<T>,
  ): Promise<T | ConnectorFailure> {
    const verdict = this.options.serviceUrls?.check(serviceUrl) ?? { ok: true };
    if (!verdict.ok) {
      this.options.logger?.error("Outbound Teams call refused", { reason: verdict.reason });
      return {
        kind: "failed",
        status: undefined,
        code: "ServiceUrlNotAllowed",
        message: `refused: ${verdict.reason}`,
      };
    }
    const client = await this.client(serviceUrl);
    const { abortSignal, done } = this.deadline();
    if (hooks?.onWire !== undefined) watchWire(abortSignal, hooks.onWire);
    try {
      return await send(client, abortSignal);
    } catch (error) {
      const failure = classifyConnectorError(error);
      if (failure === undefined) throw error;
      return failure;
    } finally {
      done();
    }
  }

  /**
   * The per-call timeout as an abort signal whose timer we clear ourselves. Not the client's
   * `timeout` option: its HTTP client (@typespec/ts-http-runtime's NodeHttpClient) clears that
   * timer only when an answer arrives, so every dropped connection left a 15 s timer behind,
   * keeping an idle process (a test worker, the local host on Ctrl+C) alive.
   */
  private deadline(): { abortSignal: AbortSignal; done: () => void } {
    const controller = new AbortController();
    let immediate: NodeJS.Immediate | undefined;
    // The abort waits one turn of the event loop after the timer: timers run before I/O in a
    // loop iteration, so on a busy process (a long GC, a CPU-bound neighbour) the timer could
    // fire while Teams' answer already sat in the socket, and Herald would give up on a call
    // Teams had accepted and send it again (a duplicate). `setImmediate` runs after the poll
    // phase has read that answer; only a call still unanswered by then is aborted.
    const timer = setTimeout(() => {
      immediate = setImmediate(() => controller.abort());
    }, this.timeoutMs);
    return {
      abortSignal: controller.signal,
      done: () => {
        clearTimeout(timer);
        if (immediate !== undefined) clearImmediate(immediate);
      },
    };
  }

  private client(serviceUrl: string): Promise<ConnectorClient> {
    let client = this.clients.get(serviceUrl);
    if (client === undefined) {
      client = this.factory
        .create(serviceUrl, undefined)
        .then((c) => withWireTimes(withoutRetries(c, this.options.logger)));
      this.clients.set(serviceUrl, client);
      client.catch(() => {
        if (this.clients.peek(serviceUrl) === client) this.clients.delete(serviceUrl);
      });
    }
    return client;
  }
}
