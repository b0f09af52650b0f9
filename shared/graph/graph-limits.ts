import type { RateWindow } from "../teams-limits";

/**
 * Microsoft Graph's documented limits for the Teams calls proactive install makes, for the
 * pacer to stay under (and the Graph simulator to enforce). Source: Microsoft Learn,
 * "Microsoft Graph service-specific throttling limits", section "Microsoft Teams service limits"
 * (https://learn.microsoft.com/graph/throttling-limits#microsoft-teams-service-limits), read
 * 2026-12. Graph answers 429 with Retry-After past them.
 */
export const GRAPH_LIMITS_SOURCE = {
  title: "Microsoft Graph throttling limits: Microsoft Teams service limits (Microsoft Learn)",
  url: "https://learn.microsoft.com/graph/throttling-limits#microsoft-teams-service-limits",
  retrieved: "2026-12",
} as const;

/** Install (POST/PUT …/teamwork/installedApps): per app, per tenant. */
export const GRAPH_INSTALL_PER_APP_PER_TENANT: RateWindow = { seconds: 1, limit: 30 };

/** Install: per app, across every tenant it serves. */
export const GRAPH_INSTALL_PER_APP_ALL_TENANTS: RateWindow = { seconds: 1, limit: 300 };

/** GET …/teamwork/installedApps (find the installation, its chat): per tenant. */
export const GRAPH_GET_INSTALLED_APPS_PER_TENANT: RateWindow = { seconds: 1, limit: 30 };
