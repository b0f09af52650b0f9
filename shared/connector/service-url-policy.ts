import { BoundedMap } from "../util/bounded-map";

/**
 * Where Herald's outbound Bot Connector calls may go. With a bot app id configured every call
 * carries the bot's Bot Framework token, so a service URL that is not Teams' would hand that
 * token to whoever runs the host: only Teams' service hosts are allowed (public, GCC, GCC High,
 * DoD: https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/send-proactive-messages),
 * plus any host the operator lists in `TeamsServiceHosts`. Anonymous local mode (no token to
 * leak) also allows loopback, so the simulator and the Agents Playground keep working.
 */
export const TEAMS_SERVICE_HOSTS: readonly string[] = [
  "smba.trafficmanager.net",
  "smba.infra.gcc.teams.microsoft.com",
  "smba.infra.gov.teams.microsoft.us",
  "smba.infra.dod.teams.microsoft.us",
];

export type ServiceUrlVerdict =
  { readonly ok: true } | { readonly ok: false; readonly reason: string };

export interface ServiceUrlPolicy {
  check(serviceUrl: string): ServiceUrlVerdict;
}

export interface ServiceUrlPolicyOptions {
  /** True when a bot app id is configured (calls carry a token). */
  readonly authenticated: boolean;
  /** Extra allowed host names, lower-cased (`TeamsServiceHosts`). */
  readonly extraHosts?: readonly string[];
}

/** `localhost`, `::1` or `127.x.y.z`: hosts only this machine answers. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * Service URLs whose verdict is kept: Teams serves a tenant from one regional URL, so a handful
 * cover a deployment; a bound keeps a stream of odd stored URLs from growing the map.
 */
const KEPT_VERDICTS = 256;

export function serviceUrlPolicy(options: ServiceUrlPolicyOptions): ServiceUrlPolicy {
  const allowed = new Set([...TEAMS_SERVICE_HOSTS, ...(options.extraHosts ?? [])]);
  const verdicts = new BoundedMap<string, ServiceUrlVerdict>(KEPT_VERDICTS);
  const judge = (serviceUrl: string): ServiceUrlVerdict => {
    let url: URL;
    try {
      url = new URL(serviceUrl);
    } catch {
      return { ok: false, reason: "the service URL is not a URL" };
    }
    const host = url.hostname.toLowerCase();
    if (!options.authenticated && isLoopback(host) && /^https?:$/.test(url.protocol))
      return { ok: true };
    if (!allowed.has(host))
      return {
        ok: false,
        reason: `service host ${host.slice(0, 100)} is not a Teams service host (add it to TeamsServiceHosts if it is one)`,
      };
    if (url.protocol !== "https:")
      return { ok: false, reason: `service URL scheme ${url.protocol} is not https` };
    if (url.username !== "" || url.password !== "")
      return { ok: false, reason: "service URL carries credentials" };
    return { ok: true };
  };
  return {
    // Every call to Teams is checked: the verdict of a URL seen before is kept, not parsed again.
    check(serviceUrl) {
      let verdict = verdicts.get(serviceUrl);
      if (verdict === undefined) {
        verdict = judge(serviceUrl);
        verdicts.set(serviceUrl, verdict);
      }
      return verdict;
    },
  };
}

/** Thrown by a bot work item whose stored service URL the policy refuses: logged, not retried. */
export class ServiceUrlRefusedError extends Error {
  constructor(readonly reason: string) {
    super(`Outbound Teams call refused: ${reason}`);
    this.name = "ServiceUrlRefusedError";
  }
}
