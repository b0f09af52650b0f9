import type { TokenCredential } from "@azure/identity";
import type { z } from "zod";

import { ConfigError } from "../errors";
import { type Logger, recipientToken } from "../logging";
import {
  chatAnswer,
  groupUserPageAnswer,
  installedAppListAnswer,
  teamsAppListAnswer,
  userAnswer,
} from "./graph-answers";
import { checkGraphEndpoint, isOnGraphEndpoint } from "./graph-endpoint-policy";
import { classifyGraphAnswer, GraphError, transportFailure } from "./graph-error";
import type {
  FindAppResult,
  FindInstallationResult,
  GetChatResult,
  GetUserResult,
  GraphPort,
  GroupMembersResult,
  InstallResult,
} from "./graph-port";
import type { GraphOperation } from "./permissions";

export interface FetchGraphClientOptions {
  /** `GraphEndpoint`: the origin every call goes to (`config.graph.endpoint`). */
  readonly endpoint: string;
  /**
   * Where tokens come from (the composition root's ManagedIdentityCredential or
   * ClientSecretCredential); undefined in anonymous local mode, where calls go without a token
   * and only to a loopback endpoint.
   */
  readonly credential: TokenCredential | undefined;
  /** Per-call deadline, token included (default 10 s). */
  readonly timeoutMs?: number;
  /** Page size asked of group member listings (`$top`, Graph allows up to 999; default 999). */
  readonly groupPageSize?: number;
  readonly logger?: Logger;
  /** Clock for Retry-After dates and token expiry (default `Date.now`). */
  readonly now?: () => number;
  /** Default: the global `fetch`. */
  readonly fetch?: typeof fetch;
}

/** A token is renewed this long before it expires. */
const TOKEN_RENEW_MARGIN_MS = 5 * 60 * 1000;
const USER_SELECT = "id,userPrincipalName,displayName,userType";
const MEMBER_SELECT = "id,userPrincipalName,displayName,userType";

interface Call {
  readonly operation: GraphOperation;
  readonly method: "GET" | "POST";
  /** Absolute URL on the configured endpoint. */
  readonly url: string;
  readonly body?: unknown;
  /** Statuses that are answers of the operation, not failures. */
  readonly accept: readonly number[];
  /** Pseudonymous subject for the logs (never the id or UPN itself). */
  readonly subject: string | undefined;
}

interface Answered {
  readonly status: number;
  readonly body: unknown;
}

/** OData string literal: single quotes doubled (https://docs.oasis-open.org/odata/odata/v4.01/odata-v4.01-part2-url-conventions.html). */
function odataString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function userSubject(idOrUpn: string): string {
  const kind = idOrUpn.includes("@") ? "userPrincipalName" : "aadObjectId";
  return recipientToken(`${kind}:${idOrUpn.toLowerCase()}`);
}

/**
 * `GraphPort` over the global `fetch`: one HTTP request per call, a deadline per call, every
 * answer validated with zod, every failure a `GraphError`. It keeps no state but the token
 * (and catalog ids are not cached here: `CatalogAppIds` does that, so a test or the caller
 * decides its lifetime). No retries, no sleeps: the caller reschedules.
 */
export class FetchGraphClient implements GraphPort {
  private readonly origin: string;
  private readonly scope: string;
  private readonly timeoutMs: number;
  private readonly groupPageSize: number;
  private readonly now: () => number;
  private readonly fetchFn: typeof fetch;
  private token: { value: string; renewAt: number } | undefined;
  private pendingToken: Promise<string> | undefined;

  constructor(private readonly options: FetchGraphClientOptions) {
    const verdict = checkGraphEndpoint(options.endpoint, {
      authenticated: options.credential !== undefined,
    });
    if (!verdict.ok) throw new ConfigError(`GraphEndpoint: ${verdict.reason}`);
    this.origin = verdict.origin;
    this.scope = `${verdict.origin}/.default`;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.groupPageSize = Math.min(999, Math.max(1, options.groupPageSize ?? 999));
    this.now = options.now ?? Date.now;
    this.fetchFn = options.fetch ?? fetch;
  }

  async getUser(idOrUpn: string): Promise<GetUserResult> {
    const answer = await this.call({
      operation: "getUser",
      method: "GET",
      url: this.url(`/v1.0/users/${encodeURIComponent(idOrUpn)}`, { $select: USER_SELECT }),
      accept: [200, 404],
      subject: userSubject(idOrUpn),
    });
    if (answer.status === 404) return { kind: "not-found" };
    const user = this.parse("getUser", userAnswer, answer.body);
    return { kind: "found", user };
  }

  async findAppByExternalId(externalId: string): Promise<FindAppResult> {
    const answer = await this.call({
      operation: "findAppByExternalId",
      method: "GET",
      url: this.url("/v1.0/appCatalogs/teamsApps", {
        $filter: `externalId eq ${odataString(externalId)}`,
      }),
      accept: [200],
      subject: undefined,
    });
    const { value } = this.parse("findAppByExternalId", teamsAppListAnswer, answer.body);
    // GUIDs compare case-insensitively; Graph may echo the manifest id in another case.
    const wanted = externalId.toLowerCase();
    const app = value.find(
      (a) => a.externalId === undefined || a.externalId.toLowerCase() === wanted,
    );
    return app === undefined ? { kind: "not-found" } : { kind: "found", catalogAppId: app.id };
  }

  async installAppForUser(userId: string, catalogAppId: string): Promise<InstallResult> {
    const answer = await this.call({
      operation: "installAppForUser",
      method: "POST",
      url: this.url(`/v1.0/users/${encodeURIComponent(userId)}/teamwork/installedApps`),
      body: {
        "teamsApp@odata.bind": `${this.origin}/v1.0/appCatalogs/teamsApps/${encodeURIComponent(catalogAppId)}`,
      },
      // 409: already installed for the user, which is what we wanted.
      accept: [200, 201, 204, 409],
      subject: userSubject(userId),
    });
    return answer.status === 409 ? { kind: "already-installed" } : { kind: "installed" };
  }

  async findInstallation(userId: string, catalogAppId: string): Promise<FindInstallationResult> {
    const answer = await this.call({
      operation: "findInstallation",
      method: "GET",
      url: this.url(`/v1.0/users/${encodeURIComponent(userId)}/teamwork/installedApps`, {
        $expand: "teamsApp",
        $filter: `teamsApp/id eq ${odataString(catalogAppId)}`,
      }),
      accept: [200],
      subject: userSubject(userId),
    });
    const { value } = this.parse("findInstallation", installedAppListAnswer, answer.body);
    const installation = value.find(
      (i) =>
        (i.teamsApp ?? undefined) === undefined ||
        i.teamsApp?.id.toLowerCase() === catalogAppId.toLowerCase(),
    );
    return installation === undefined
      ? { kind: "not-found" }
      : { kind: "found", installationId: installation.id };
  }

  async getInstalledAppChat(userId: string, installationId: string): Promise<GetChatResult> {
    const answer = await this.call({
      operation: "getInstalledAppChat",
      method: "GET",
      url: this.url(
        `/v1.0/users/${encodeURIComponent(userId)}/teamwork/installedApps/${encodeURIComponent(installationId)}/chat`,
      ),
      accept: [200, 404],
      subject: userSubject(userId),
    });
    if (answer.status === 404) return { kind: "not-found" };
    const chat = this.parse("getInstalledAppChat", chatAnswer, answer.body);
    return { kind: "found", chatId: chat.id };
  }

  async listGroupUserMembers(groupId: string, pageLink?: string): Promise<GroupMembersResult> {
    const operation = "listGroupUserMembers";
    if (pageLink !== undefined && !isOnGraphEndpoint(pageLink, this.origin))
      throw this.offEndpoint(pageLink);
    const answer = await this.call({
      operation,
      method: "GET",
      url:
        pageLink ??
        this.url(
          `/v1.0/groups/${encodeURIComponent(groupId)}/transitiveMembers/microsoft.graph.user`,
          { $select: MEMBER_SELECT, $top: String(this.groupPageSize) },
        ),
      accept: [200, 404],
      subject: recipientToken(`groupId:${groupId.toLowerCase()}`),
    });
    // A group that is gone is an answer for the first page; mid-listing it is a failure.
    if (answer.status === 404) {
      if (pageLink === undefined) return { kind: "not-found" };
      throw new GraphError({
        operation,
        kind: "not-found",
        status: 404,
        reason: "404 on a next page",
      });
    }
    const page = this.parse(operation, groupUserPageAnswer, answer.body);
    const nextLink = page["@odata.nextLink"];
    if (nextLink !== undefined && !isOnGraphEndpoint(nextLink, this.origin))
      throw this.offEndpoint(nextLink);
    return { kind: "page", users: page.value, nextLink };
  }

  // ---- plumbing ------------------------------------------------------------------------------

  private url(path: string, query: Record<string, string> = {}): string {
    const url = new URL(path, `${this.origin}/`);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    // URLSearchParams writes spaces as "+"; Graph's OData parser wants %20 in $filter.
    return url.toString().replace(/\+/g, "%20");
  }

  private offEndpoint(link: string): GraphError {
    let host = "an unparsable URL";
    try {
      host = new URL(link).host.slice(0, 100);
    } catch {
      // keep the placeholder
    }
    return new GraphError({
      operation: "listGroupUserMembers",
      kind: "invalid-response",
      reason: `next-page link points at ${host}, not at GraphEndpoint ${this.origin}: not followed`,
    });
  }

  private parse<T extends z.ZodType>(
    operation: GraphOperation,
    schema: T,
    body: unknown,
  ): z.output<T> {
    const parsed = schema.safeParse(body);
    if (parsed.success) return parsed.data;
    const where = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`)
      .join("; ");
    throw new GraphError({
      operation,
      kind: "unreadable",
      reason: `the answer is not the documented shape (${where})`,
    });
  }

  private async call(call: Call): Promise<Answered> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    const started = this.now();
    const headers: Record<string, string> = { accept: "application/json" };
    const credential = this.options.credential;
    if (credential !== undefined)
      headers.authorization = `Bearer ${await this.bearer(credential, call.operation, signal)}`;
    if (call.body !== undefined) headers["content-type"] = "application/json";

    let response: Response;
    let text: string;
    try {
      response = await this.fetchFn(call.url, {
        method: call.method,
        headers,
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
        signal,
        // A redirect would carry the token to wherever it points.
        redirect: "error",
      });
      text = await response.text();
    } catch (error) {
      throw this.logged(call, transportFailure(call.operation, error), started);
    }

    let body: unknown;
    let badJson = false;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        badJson = true;
      }
    }
    if (!call.accept.includes(response.status)) {
      throw this.logged(
        call,
        classifyGraphAnswer(
          call.operation,
          { status: response.status, headers: response.headers, body },
          this.now(),
        ),
        started,
      );
    }
    if (badJson || (response.status === 200 && body === undefined))
      throw this.logged(
        call,
        new GraphError({
          operation: call.operation,
          kind: "unreadable",
          status: response.status,
          reason: `status ${response.status} with a body that is not JSON`,
        }),
        started,
      );
    return { status: response.status, body };
  }

  private async bearer(
    credential: TokenCredential,
    operation: GraphOperation,
    signal: AbortSignal,
  ): Promise<string> {
    const cached = this.token;
    if (cached !== undefined && this.now() < cached.renewAt) return cached.value;
    // One token request at a time: concurrent calls share it.
    this.pendingToken ??= this.fetchToken(credential, signal).finally(() => {
      this.pendingToken = undefined;
    });
    try {
      return await this.pendingToken;
    } catch (error) {
      const name = error instanceof Error ? error.name : "error";
      throw new GraphError(
        {
          operation,
          kind: "transient",
          reason: `no token for ${this.scope} (${name}); check the managed identity`,
        },
        { cause: error },
      );
    }
  }

  private async fetchToken(credential: TokenCredential, signal: AbortSignal): Promise<string> {
    const token = await credential.getToken(this.scope, { abortSignal: signal });
    if (token === null) throw new Error("the credential returned no token");
    this.token = {
      value: token.token,
      renewAt: Math.min(
        token.expiresOnTimestamp - TOKEN_RENEW_MARGIN_MS,
        this.now() + 60 * 60 * 1000,
      ),
    };
    return token.token;
  }

  private logged(call: Call, error: GraphError, started: number): GraphError {
    this.options.logger?.warn("graph call failed", {
      operation: call.operation,
      kind: error.kind,
      status: error.status,
      code: error.code,
      requestId: error.requestId,
      retryAfterMs: error.retryAfterMs,
      subject: call.subject,
      ms: this.now() - started,
    });
    return error;
  }
}
