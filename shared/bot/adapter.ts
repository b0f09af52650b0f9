import {
  type Activity,
  CallerIdConstants,
  CloudAdapter,
  ConfigurationBotFrameworkAuthentication,
} from "botbuilder";
import {
  type AuthenticateRequestResult,
  AuthenticationConstants,
  AuthenticationError,
} from "botframework-connector";

import type { Config } from "../config";
import type { Logger } from "../logging";

export interface BotAdapter {
  adapter: CloudAdapter;
  /** "" when anonymous; what proactive calls (create conversation, roster) identify as. */
  botAppId: string;
  /** True when inbound requests must carry a valid Bot Framework token. */
  requiresAuthentication: boolean;
}

export interface BotAdapterOptions {
  /**
   * Where Bot Framework signing keys are published (default: Microsoft's). Only tests change
   * it, to stand in for Azure AD at this one point.
   */
  openIdMetadataUrl?: string;
}

const TOKEN_ERRORS = new Set(["JsonWebTokenError", "NotBeforeError", "TokenExpiredError"]);

/**
 * botbuilder rethrows jsonwebtoken's own errors (a bad signature, a malformed token) as they
 * are, and CloudAdapter answers anything but its AuthenticationError with 500. A bad token is
 * the caller's fault: 401. Failing to fetch the signing keys stays a 5xx (Teams retries).
 */
class StrictBotFrameworkAuthentication extends ConfigurationBotFrameworkAuthentication {
  override async authenticateRequest(
    activity: Activity,
    authHeader: string,
  ): Promise<AuthenticateRequestResult> {
    try {
      return await super.authenticateRequest(activity, authHeader);
    } catch (error) {
      if (error instanceof Error && TOKEN_ERRORS.has(error.name)) {
        throw new AuthenticationError(`Unauthorized: ${error.message}`, 401);
      }
      throw error;
    }
  }
}

/**
 * CloudAdapter with Bot Framework JWT validation when a bot app id is configured. Without one
 * (local development only; `loadConfig` refuses that in Azure) it accepts anonymous requests
 * and calls the connector without a token, which is what the simulator and the Agents
 * Playground expect. That switch is announced loudly, once, at start-up.
 */
export function createBotAdapter(
  bot: Config["bot"],
  logger: Logger,
  options: BotAdapterOptions = {},
): BotAdapter {
  if (bot.kind === "anonymous") {
    logger.warn(
      "BOT AUTHENTICATION IS OFF: MicrosoftAppId is not set, so /api/messages accepts requests without a Bot Framework token. This is for local development only; never run a deployment like this.",
    );
    return {
      adapter: new CloudAdapter(new ConfigurationBotFrameworkAuthentication({})),
      botAppId: "",
      requiresAuthentication: false,
    };
  }
  const auth = new StrictBotFrameworkAuthentication({
    MicrosoftAppId: bot.appId,
    MicrosoftAppType: bot.appType,
    MicrosoftAppTenantId: bot.tenantId,
    // UserAssignedMSI has no password: the managed identity whose client id is the app id signs.
    ...(bot.password !== undefined ? { MicrosoftAppPassword: bot.password } : {}),
    // botbuilder treats any of these as "a custom cloud" and wants all of them: the public
    // cloud's values, with only the key source replaced.
    ...(options.openIdMetadataUrl !== undefined
      ? {
          ValidateAuthority: true,
          ToChannelFromBotLoginUrl: AuthenticationConstants.ToChannelFromBotLoginUrl,
          ToChannelFromBotOAuthScope: AuthenticationConstants.ToChannelFromBotOAuthScope,
          ToBotFromChannelTokenIssuer: AuthenticationConstants.ToBotFromChannelTokenIssuer,
          OAuthUrl: AuthenticationConstants.OAuthUrl,
          CallerId: CallerIdConstants.PublicAzureChannel,
          ToBotFromChannelOpenIdMetadataUrl: options.openIdMetadataUrl,
          ToBotFromEmulatorOpenIdMetadataUrl: options.openIdMetadataUrl,
        }
      : {}),
  });
  logger.info("Bot Framework authentication on", { appId: bot.appId, appType: bot.appType });
  return { adapter: new CloudAdapter(auth), botAppId: bot.appId, requiresAuthentication: true };
}
