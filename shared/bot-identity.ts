/**
 * Who the bot is to Microsoft's services: nobody (anonymous local development) or an Entra app
 * (single-tenant with a secret, or a user-assigned managed identity). Both botbuilder's outbound
 * calls and Herald's Microsoft Graph calls use this one identity (`config.ts` reads it from the
 * settings); a leaf module, so neither of them depends on the settings themselves.
 */
export type BotIdentity =
  | { readonly kind: "anonymous" }
  | {
      readonly kind: "authenticated";
      readonly appId: string;
      readonly appType: "UserAssignedMSI" | "SingleTenant";
      readonly tenantId: string;
      readonly password?: string;
    };

/** What decides where the bot's Teams calls may go: its identity and extra allowed hosts. */
export interface BotEndpointSettings {
  readonly bot: BotIdentity;
  /** Lower-cased extra host names outbound Teams calls may go to (beside Teams' own). */
  readonly extraTeamsServiceHosts: readonly string[];
}
