import type { TokenCredential } from "@azure/identity";

import type { BotIdentity } from "../bot-identity";

// eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy SDK load, typed
const identitySdk = () => require("@azure/identity") as typeof import("@azure/identity");

/**
 * The credential Graph calls should use, for the composition root. Graph's
 * `TeamsAppInstallation.ReadWriteSelfForUser.All` lets an app install *itself*: Teams matches
 * the caller's app id against the manifest's `webApplicationInfo.id`, which Herald's manifest
 * sets to the bot's app id. So the Graph caller must be the bot's identity:
 * - UserAssignedMSI: the managed identity whose client id is `MicrosoftAppId`;
 * - SingleTenant: the app registration `MicrosoftAppId` with its secret.
 * Anonymous local mode: undefined (no token; the endpoint policy allows loopback only).
 *
 * `@azure/identity` is loaded here, on first use, so triggers that never call Graph do not
 * pay for it at cold start.
 */
export function graphCredential(bot: BotIdentity): TokenCredential | undefined {
  if (bot.kind === "anonymous") return undefined;
  const identity = identitySdk();
  if (bot.appType === "SingleTenant") {
    if (bot.password === undefined)
      throw new Error("graphCredential: a SingleTenant bot needs MicrosoftAppPassword");
    return new identity.ClientSecretCredential(bot.tenantId, bot.appId, bot.password);
  }
  return new identity.ManagedIdentityCredential({ clientId: bot.appId });
}
