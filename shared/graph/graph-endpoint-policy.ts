import { isLoopback } from "../connector/service-url-policy";

/**
 * Where Herald's Microsoft Graph calls may go. With a bot app id configured every call carries
 * an Entra token for Graph, so the endpoint must be https. Graph's national clouds have hosts of
 * their own (https://learn.microsoft.com/graph/deployments), which is why the host is a setting
 * (`GraphEndpoint`) and not a fixed list. Anonymous local mode sends no token and allows only a
 * loopback endpoint (the Graph simulator), so a local run can never reach a real tenant.
 *
 * The same check guards every URL the client is about to call, including an `@odata.nextLink`
 * taken from an answer: a response must never steer the token to another host.
 */
export const DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com";

export type GraphEndpointVerdict =
  { readonly ok: true; readonly origin: string } | { readonly ok: false; readonly reason: string };

export interface GraphEndpointOptions {
  /** True when a bot app id is configured (Graph calls carry a token). */
  readonly authenticated: boolean;
}

/** Checks the configured endpoint; `origin` is its normalised `scheme://host[:port]`. */
export function checkGraphEndpoint(
  endpoint: string,
  options: GraphEndpointOptions,
): GraphEndpointVerdict {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { ok: false, reason: "is not a URL" };
  }
  if (url.username !== "" || url.password !== "")
    return { ok: false, reason: "must not carry credentials" };
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "")
    return {
      ok: false,
      reason: "must be an origin only (scheme and host, no path), e.g. https://graph.microsoft.com",
    };
  if (!/^https?:$/.test(url.protocol))
    return { ok: false, reason: `scheme ${url.protocol} is not https` };
  if (options.authenticated) {
    if (url.protocol !== "https:")
      return {
        ok: false,
        reason: "must be https when MicrosoftAppId is set (calls carry a token)",
      };
  } else if (!isLoopback(url.hostname.toLowerCase())) {
    return {
      ok: false,
      reason:
        "must be a loopback address (a local Graph stand-in) when MicrosoftAppId is empty: anonymous local mode never calls a real tenant",
    };
  }
  return { ok: true, origin: url.origin };
}

/**
 * Whether `url` (a link Herald is about to follow) stays on the configured Graph origin. Scheme,
 * host and port must match exactly; credentials in the URL are refused.
 */
export function isOnGraphEndpoint(url: string, origin: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  return parsed.origin === origin && parsed.username === "" && parsed.password === "";
}
