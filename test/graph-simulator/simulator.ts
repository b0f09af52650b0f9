import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import {
  GRAPH_GET_INSTALLED_APPS_PER_TENANT,
  GRAPH_INSTALL_PER_APP_PER_TENANT,
} from "../../shared/graph/graph-limits";
import { GRAPH_PERMISSIONS, type GraphPermission } from "../../shared/graph/permissions";
import type { SimUser, TeamsActivity, TeamsSimulator } from "../simulator";
import { GraphDirectory } from "./directory";
import type {
  CatalogApp,
  ChatAvailability,
  ChatState,
  GraphFaultSpec,
  GraphRecordedRequest,
  GraphRouteName,
  GraphSimGroup,
  GraphSimUser,
  InstallActivities,
  InstallationRecord,
  NewGraphGroup,
  NewGraphUser,
  OtherMember,
  PostedInstallActivity,
} from "./types";

export interface GraphSimulatorOptions {
  /** The Teams simulator whose tenant, users and activity builders installs use. */
  teams?: TeamsSimulator;
  /** Herald's `/api/messages`: where install activities are posted (needs `teams`). */
  botEndpoint?: string;
  /** When install activities are posted (default "immediate" when `teams` and `botEndpoint` are given, else "off"). */
  installActivities?: InstallActivities;
  /** Delay before "immediate" activities are posted (ms, default 0). */
  installActivityDelayMs?: number;
  /** Order of the two activities (default installationUpdate first). */
  activityOrder?: "installation-first" | "conversation-first";
  /** When the installed app's chat can be read (default "at-install"). */
  chatAvailability?: ChatAvailability;
  /**
   * The chat id answered for a user: the Teams simulator's 1:1 conversation id for them (default
   * when linked, so Herald's sends to it land), or Graph's own `19:{user}_{bot}@unq.gbl.spaces`
   * format (default otherwise; the Teams simulator does not know those ids).
   */
  chatIds?: "teams-conversation" | "graph-format";
  /** Application permissions consented (default all four). */
  grantedPermissions?: readonly GraphPermission[];
  /** Members per page when the caller gives no `$top` (Graph's default is 100). */
  defaultPageSize?: number;
  /** Answer 429 past Graph's Teams limits (30 installs/s, 30 installedApps GETs/s). Default off. */
  enforceRateLimits?: boolean;
  /** Answer 401 to a request without a bearer token (default off: anonymous clients are fine). */
  requireAuthorization?: boolean;
  clock?: () => number;
  /** Port on 127.0.0.1 (default 0: a free one). */
  port?: number;
}

interface Answer {
  status: number;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
}

interface Matched {
  route: GraphRouteName;
  userKey?: string;
  installationId?: string;
  groupId?: string;
}

interface PendingFault {
  route: GraphRouteName | "*";
  spec: GraphFaultSpec;
  remaining: number;
}

const PERMISSION_OF: Partial<Record<GraphRouteName, GraphPermission>> = {
  getUser: GRAPH_PERMISSIONS.readUsers,
  listCatalogApps: GRAPH_PERMISSIONS.readAppCatalog,
  installApp: GRAPH_PERMISSIONS.installSelf,
  listInstalledApps: GRAPH_PERMISSIONS.installSelf,
  getInstalledAppChat: GRAPH_PERMISSIONS.installSelf,
  listGroupUserMembers: GRAPH_PERMISSIONS.readGroupMembers,
};

const DEFAULT_CODES: Record<number, string> = {
  400: "BadRequest",
  401: "InvalidAuthenticationToken",
  403: "Authorization_RequestDenied",
  404: "Request_ResourceNotFound",
  409: "Conflict",
  429: "TooManyRequests",
  500: "InternalServerError",
  502: "BadGateway",
  503: "ServiceUnavailable",
  504: "GatewayTimeout",
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Graph's error body: `{ error: { code, message, innerError: { request-id, date } } }`. */
export function graphError(status: number, code?: string, message?: string): unknown {
  return {
    error: {
      code: code ?? DEFAULT_CODES[status] ?? "UnknownError",
      message: message ?? `HTTP ${status}`,
      innerError: {
        "request-id": `sim-${status}-${Math.random().toString(16).slice(2, 10)}`,
        date: new Date().toISOString(),
      },
    },
  };
}

function odataLiteral(filter: string | undefined, property: string): string | undefined {
  if (filter === undefined) return undefined;
  const match = new RegExp(
    `^\\s*${property.replace("/", "\\/")}\\s+eq\\s+'((?:[^']|'')*)'\\s*$`,
  ).exec(filter);
  return match?.[1]?.replace(/''/g, "'");
}

/** Counts accepted requests per key in a sliding 1 s window. */
class SecondWindow {
  private readonly log = new Map<string, number[]>();

  allow(key: string, limit: number, now: number): boolean {
    const times = (this.log.get(key) ?? []).filter((t) => t > now - 1000);
    if (times.length >= limit) {
      this.log.set(key, times);
      return false;
    }
    times.push(now);
    this.log.set(key, times);
    return true;
  }

  reset(): void {
    this.log.clear();
  }
}

/**
 * A local stand-in for the slice of Microsoft Graph Herald calls: users, the org app catalog,
 * a user's installed apps and their chat, groups' transitive user members. Real HTTP on
 * 127.0.0.1; records every request; injects 403 (missing consent), 429 (Retry-After), 5xx
 * and malformed answers; optionally enforces Graph's install limits; and, linked to a Teams
 * simulator, posts the `installationUpdate` and `conversationUpdate` Teams sends on install.
 */
export class GraphSimulator {
  readonly tenantId: string;
  private readonly directory = new GraphDirectory();
  private readonly teams: TeamsSimulator | undefined;
  private botEndpoint: string | undefined;
  private readonly installActivities: InstallActivities;
  private readonly activityDelayMs: number;
  private readonly activityOrder: "installation-first" | "conversation-first";
  private readonly chatAvailability: ChatAvailability;
  private readonly chatIds: "teams-conversation" | "graph-format";
  private readonly defaultPageSize: number;
  private readonly requireAuthorization: boolean;
  private readonly clock: () => number;
  private granted: Set<GraphPermission>;
  private enforceRateLimits: boolean;
  private readonly window = new SecondWindow();
  private faults: PendingFault[] = [];
  private recorded: GraphRecordedRequest[] = [];
  /** `${userId}|${catalogAppId}` -> installation. */
  private readonly installed = new Map<string, InstallationRecord>();
  private readonly chats = new Map<string, ChatState>();
  private readonly heldActivities: { user: GraphSimUser; activities: TeamsActivity[] }[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private posted: PostedInstallActivity[] = [];
  private port = 0;

  private constructor(
    private readonly server: Server,
    options: GraphSimulatorOptions,
  ) {
    this.teams = options.teams;
    this.tenantId = options.teams?.tenantId ?? "00000000-0000-4000-8000-000000000000";
    this.botEndpoint = options.botEndpoint;
    this.installActivities =
      options.installActivities ??
      (options.teams !== undefined && options.botEndpoint !== undefined ? "immediate" : "off");
    // The bot endpoint may come later (`setBotEndpoint`); until then posts are recorded as failed.
    if (this.installActivities !== "off" && this.teams === undefined)
      throw new Error("graph simulator: install activities need a linked Teams simulator");
    this.activityDelayMs = options.installActivityDelayMs ?? 0;
    this.activityOrder = options.activityOrder ?? "installation-first";
    this.chatAvailability = options.chatAvailability ?? "at-install";
    this.chatIds =
      options.chatIds ?? (options.teams !== undefined ? "teams-conversation" : "graph-format");
    this.defaultPageSize = options.defaultPageSize ?? 100;
    this.requireAuthorization = options.requireAuthorization ?? false;
    this.enforceRateLimits = options.enforceRateLimits ?? false;
    this.clock = options.clock ?? Date.now;
    this.granted = new Set(options.grantedPermissions ?? Object.values(GRAPH_PERMISSIONS));
  }

  /** @internal use `startGraphSimulator`. */
  static async start(options: GraphSimulatorOptions = {}): Promise<GraphSimulator> {
    const server = createServer();
    const sim = new GraphSimulator(server, options);
    server.on("request", (req, res) => {
      sim.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "application/json" });
          res.end(JSON.stringify(graphError(500, "SimulatorBug", String(error))));
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    sim.port = (server.address() as AddressInfo).port;
    return sim;
  }

  /** `http://127.0.0.1:<port>`: Herald's `GraphEndpoint`. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  // ---- directory ---------------------------------------------------------------------------

  addUser(input: NewGraphUser = {}): GraphSimUser {
    return this.directory.addUser(input);
  }

  addUsers(
    count: number,
    input: Omit<NewGraphUser, "id" | "userPrincipalName" | "teamsUser"> = {},
  ): GraphSimUser[] {
    return Array.from({ length: count }, () => this.directory.addUser(input));
  }

  /** The user as the simulator knows them now (with the Teams user once installed). */
  user(idOrUpn: string | GraphSimUser): GraphSimUser | undefined {
    return this.directory.findUser(typeof idOrUpn === "string" ? idOrUpn : idOrUpn.id);
  }

  addGroup(input: NewGraphGroup = {}): GraphSimGroup {
    return this.directory.addGroup(input);
  }

  addGroupMembers(
    group: GraphSimGroup | string,
    members: readonly (GraphSimUser | GraphSimGroup | OtherMember)[],
  ): void {
    this.directory.addGroupMembers(group, members);
  }

  /** Puts the app in the org catalog (`published: false`: uploaded, not yet visible in Graph). */
  publishApp(input: {
    externalId: string;
    id?: string;
    displayName?: string;
    published?: boolean;
  }): CatalogApp {
    return this.directory.publishApp(input);
  }

  /** `teamsApp@odata.bind` value for a catalog app, as Herald must send it. */
  bindingFor(app: CatalogApp | string): string {
    return `${this.endpoint}/v1.0/appCatalogs/teamsApps/${typeof app === "string" ? app : app.id}`;
  }

  /** Where install activities go from now on (a bot endpoint started after the simulator). */
  setBotEndpoint(url: string): void {
    if (this.teams === undefined)
      throw new Error("graph simulator: install activities need a linked Teams simulator");
    this.botEndpoint = url;
  }

  // ---- consent, faults, limits -------------------------------------------------------------

  grant(...permissions: GraphPermission[]): void {
    for (const p of permissions) this.granted.add(p);
  }

  revoke(...permissions: GraphPermission[]): void {
    for (const p of permissions) this.granted.delete(p);
  }

  /** The next matching request(s) on `route` (or any route) get this answer. */
  failNext(route: GraphRouteName | "*", spec: GraphFaultSpec): void {
    const times = spec.times ?? 1;
    if (!Number.isInteger(times) || times < 1)
      throw new Error("graph simulator: times must be a positive integer");
    this.faults.push({ route, spec, remaining: times });
  }

  setRateLimits(enforce: boolean): void {
    this.enforceRateLimits = enforce;
  }

  // ---- installs and chats ------------------------------------------------------------------

  /** The installation of the app for the user, if any. */
  installationOf(
    user: GraphSimUser | string,
    app: CatalogApp | string,
  ): InstallationRecord | undefined {
    const userId = typeof user === "string" ? user.toLowerCase() : user.id;
    return this.installed.get(`${userId}|${typeof app === "string" ? app.toLowerCase() : app.id}`);
  }

  installations(): InstallationRecord[] {
    return [...this.installed.values()];
  }

  /** Sets the chat a user's installed app answers (before or after the install). */
  setChat(user: GraphSimUser, state: ChatState): void {
    this.chats.set(user.id, state);
  }

  chatOf(user: GraphSimUser): ChatState | undefined {
    return this.chats.get(user.id);
  }

  /** Teams has created the 1:1 chat: the installed app's `chat` answers it from now on. */
  makeChatAvailable(user: GraphSimUser): void {
    const state = this.chats.get(user.id);
    this.chats.set(user.id, { kind: "available", chatId: state?.chatId ?? this.chatIdFor(user) });
  }

  /** Posts the held ("manual") install activities, oldest first; resolves when the bot answered. */
  async releaseInstallActivities(): Promise<void> {
    const held = this.heldActivities.splice(0);
    for (const { user, activities } of held) await this.post(user, activities);
  }

  /** Activities posted to the bot so far, oldest first. */
  get postedActivities(): readonly PostedInstallActivity[] {
    return this.posted;
  }

  /** Waits for every activity post in flight. */
  async settled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  // ---- recording ---------------------------------------------------------------------------

  get requests(): readonly GraphRecordedRequest[] {
    return this.recorded;
  }

  countRoute(route: GraphRouteName, status?: number): number {
    return this.recorded.filter(
      (r) => r.route === route && (status === undefined || r.status === status),
    ).length;
  }

  /** Forgets requests, faults, rate windows and posted activities; the directory and installs stay. */
  reset(): void {
    this.recorded = [];
    this.faults = [];
    this.posted = [];
    this.window.reset();
  }

  async close(): Promise<void> {
    await this.settled();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = this.clock();
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const query: Record<string, string> = {};
    url.searchParams.forEach((value, key) => {
      query[key] = value;
    });
    const method = (req.method ?? "GET").toUpperCase();
    const raw = await readBody(req);
    let body: unknown;
    let badJson = false;
    if (raw !== "") {
      try {
        body = JSON.parse(raw);
      } catch {
        badJson = true;
      }
    }
    const matched = match(method, url.pathname);
    const authorization = req.headers.authorization;
    const record: GraphRecordedRequest = {
      method,
      path: url.pathname,
      query,
      route: matched?.route ?? "unknown",
      hasAuthorization: typeof authorization === "string" && /^Bearer \S+/.test(authorization),
      body,
      status: 0,
      outcome: "pending",
      at,
    };
    this.recorded.push(record);
    const answer = this.decide(matched, record, body, badJson, query, at);
    record.status = answer.status;
    const headers: Record<string, string> = { ...answer.headers };
    if (answer.raw !== undefined) {
      res.writeHead(answer.status, { "content-type": "application/json", ...headers });
      res.end(answer.raw);
    } else if (answer.body === undefined) {
      res.writeHead(answer.status, headers);
      res.end();
    } else {
      res.writeHead(answer.status, {
        "content-type": "application/json; odata.metadata=minimal",
        ...headers,
      });
      res.end(JSON.stringify(answer.body));
    }
  }

  private decide(
    matched: Matched | undefined,
    record: GraphRecordedRequest,
    body: unknown,
    badJson: boolean,
    query: Record<string, string>,
    now: number,
  ): Answer {
    if (matched === undefined) {
      record.outcome = "handled";
      return {
        status: 400,
        body: graphError(400, "BadRequest", "Resource not found for the segment."),
      };
    }
    const route = matched.route;
    if (this.requireAuthorization && !record.hasAuthorization) {
      record.outcome = "forbidden";
      return {
        status: 401,
        body: graphError(401, "InvalidAuthenticationToken", "Access token is empty."),
      };
    }
    const fault = this.takeFault(route);
    if (fault !== undefined) {
      record.outcome = "fault";
      return faultAnswer(fault);
    }
    const permission = PERMISSION_OF[route];
    if (permission !== undefined && !this.granted.has(permission)) {
      record.outcome = "forbidden";
      return {
        status: 403,
        body: graphError(
          403,
          "Authorization_RequestDenied",
          "Insufficient privileges to complete the operation.",
        ),
      };
    }
    if (this.enforceRateLimits) {
      const limit =
        route === "installApp"
          ? GRAPH_INSTALL_PER_APP_PER_TENANT.limit
          : route === "listInstalledApps" || route === "getInstalledAppChat"
            ? GRAPH_GET_INSTALLED_APPS_PER_TENANT.limit
            : undefined;
      if (
        limit !== undefined &&
        !this.window.allow(
          `${route === "installApp" ? "install" : "get"}|${this.tenantId}`,
          limit,
          now,
        )
      ) {
        record.outcome = "rateLimited";
        return {
          status: 429,
          headers: { "retry-after": "1" },
          body: graphError(429, "TooManyRequests", "Too many requests."),
        };
      }
    }
    record.outcome = "handled";
    if (badJson) return { status: 400, body: graphError(400, "BadRequest", "Invalid JSON body.") };
    switch (route) {
      case "getUser":
        return this.getUser(matched.userKey ?? "", query);
      case "listCatalogApps":
        return this.listCatalogApps(query);
      case "installApp":
        return this.install(matched.userKey ?? "", body, now);
      case "listInstalledApps":
        return this.listInstalledApps(matched.userKey ?? "", query);
      case "getInstalledAppChat":
        return this.installedAppChat(matched.userKey ?? "", matched.installationId ?? "");
      case "listGroupUserMembers":
        return this.groupUsers(matched.groupId ?? "", query);
      case "unknown":
        return { status: 400, body: graphError(400) };
    }
  }

  private takeFault(route: GraphRouteName): GraphFaultSpec | undefined {
    const index = this.faults.findIndex((f) => f.route === "*" || f.route === route);
    const fault = this.faults[index];
    if (fault === undefined) return undefined;
    fault.remaining -= 1;
    if (fault.remaining === 0) this.faults.splice(index, 1);
    return fault.spec;
  }

  private getUser(key: string, query: Record<string, string>): Answer {
    const user = this.directory.findUser(key);
    if (user === undefined)
      // Graph quotes the key, UPN included: a client must not copy this message into its logs.
      return {
        status: 404,
        body: graphError(
          404,
          "Request_ResourceNotFound",
          `Resource '${key}' does not exist or one of its queried reference-property objects are not present.`,
        ),
      };
    return { status: 200, body: select(userJson(user), query.$select) };
  }

  private listCatalogApps(query: Record<string, string>): Answer {
    const filter = query.$filter;
    const externalId = odataLiteral(filter, "externalId");
    if (externalId === undefined)
      return {
        status: 400,
        body: graphError(400, "BadRequest", "Only $filter=externalId eq '…' is simulated."),
      };
    return {
      status: 200,
      body: {
        "@odata.context": `${this.endpoint}/v1.0/$metadata#appCatalogs/teamsApps`,
        value: this.directory.appsByExternalId(externalId).map(appJson),
      },
    };
  }

  private install(userKey: string, body: unknown, now: number): Answer {
    const user = this.directory.findUser(userKey);
    if (user === undefined)
      return { status: 404, body: graphError(404, "NotFound", "User not found.") };
    const bind =
      typeof body === "object" && body !== null
        ? (body as Record<string, unknown>)["teamsApp@odata.bind"]
        : undefined;
    const prefix = `${this.endpoint}/v1.0/appCatalogs/teamsApps/`;
    if (typeof bind !== "string" || !bind.startsWith(prefix))
      return {
        status: 400,
        body: graphError(400, "BadRequest", `teamsApp@odata.bind must be ${prefix}{id}.`),
      };
    const app = this.directory.app(decodeURIComponent(bind.slice(prefix.length)));
    if (app === undefined || !app.published)
      return {
        status: 400,
        body: graphError(400, "BadRequest", "The teamsApp binding names no app of the catalog."),
      };
    const key = `${user.id}|${app.id}`;
    if (this.installed.has(key))
      return { status: 409, body: graphError(409, "Conflict", "App is already installed.") };
    const installation: InstallationRecord = {
      id: Buffer.from(`${user.id}##${app.id}`, "utf8").toString("base64"),
      userId: user.id,
      catalogAppId: app.id,
      installedAt: now,
    };
    this.installed.set(key, installation);
    const linked = this.linkTeamsUser(user);
    if (!this.chats.has(user.id)) {
      const chatId = this.chatIdFor(linked);
      this.chats.set(
        user.id,
        this.chatAvailability === "at-install"
          ? { kind: "available", chatId }
          : { kind: "pending", chatId },
      );
    }
    this.scheduleActivities(linked);
    return { status: 201 };
  }

  private listInstalledApps(userKey: string, query: Record<string, string>): Answer {
    const user = this.directory.findUser(userKey);
    if (user === undefined)
      return { status: 404, body: graphError(404, "NotFound", "User not found.") };
    const filter = query.$filter;
    const wanted = filter === undefined ? undefined : odataLiteral(filter, "teamsApp/id");
    if (filter !== undefined && wanted === undefined)
      return {
        status: 400,
        body: graphError(400, "BadRequest", "Only $filter=teamsApp/id eq '…' is simulated."),
      };
    const expand = query.$expand === "teamsApp";
    const value = [...this.installed.values()]
      .filter(
        (i) =>
          i.userId === user.id && (wanted === undefined || i.catalogAppId === wanted.toLowerCase()),
      )
      .map((i) => {
        const app = this.directory.app(i.catalogAppId);
        return expand && app !== undefined ? { id: i.id, teamsApp: appJson(app) } : { id: i.id };
      });
    return { status: 200, body: { value } };
  }

  private installedAppChat(userKey: string, installationId: string): Answer {
    const user = this.directory.findUser(userKey);
    const installation = [...this.installed.values()].find((i) => i.id === installationId);
    if (user === undefined || installation === undefined || installation.userId !== user.id)
      return { status: 404, body: graphError(404, "NotFound", "Installation not found.") };
    const chat = this.chats.get(user.id);
    if (chat?.kind !== "available")
      return { status: 404, body: graphError(404, "NotFound", "Chat not found.") };
    return {
      status: 200,
      body: { id: chat.chatId, chatType: "oneOnOne", tenantId: this.tenantId },
    };
  }

  private groupUsers(groupId: string, query: Record<string, string>): Answer {
    if (!this.directory.hasGroup(groupId))
      return {
        status: 404,
        body: graphError(404, "Request_ResourceNotFound", `Resource '${groupId}' does not exist.`),
      };
    let top = this.defaultPageSize;
    if (query.$top !== undefined) {
      const parsed = Number(query.$top);
      if (!Number.isInteger(parsed) || parsed < 1 || parsed > 999)
        return {
          status: 400,
          body: graphError(400, "Request_BadRequest", "Invalid $top (1..999)."),
        };
      top = parsed;
    }
    let offset = 0;
    if (query.$skiptoken !== undefined) {
      const decoded = decodeSkipToken(query.$skiptoken, groupId);
      if (decoded === undefined)
        return { status: 400, body: graphError(400, "Request_BadRequest", "Invalid $skiptoken.") };
      offset = decoded;
    }
    const users = this.directory.transitiveUsers(groupId);
    const page = users.slice(offset, offset + top).map((u) => select(userJson(u), query.$select));
    const next = offset + page.length;
    const answer: Record<string, unknown> = {
      "@odata.context": `${this.endpoint}/v1.0/$metadata#users`,
      value: page,
    };
    if (next < users.length) {
      const link = new URL(
        `${this.endpoint}/v1.0/groups/${groupId}/transitiveMembers/microsoft.graph.user`,
      );
      if (query.$select !== undefined) link.searchParams.set("$select", query.$select);
      link.searchParams.set("$top", String(top));
      link.searchParams.set("$skiptoken", encodeSkipToken(groupId, next));
      answer["@odata.nextLink"] = link.toString();
    }
    return { status: 200, body: answer };
  }

  // ---- the Teams side of an install --------------------------------------------------------

  /** The Teams user for a Graph user, created in the Teams simulator on first install. */
  private linkTeamsUser(user: GraphSimUser): GraphSimUser {
    if (user.teamsUser !== undefined || this.teams === undefined) return user;
    const teamsUser =
      this.teams.findUser(user.id) ??
      this.teams.addUser({
        aadObjectId: user.id,
        userPrincipalName: user.userPrincipalName,
        name: user.displayName,
        userRole: user.userType === "Guest" ? "guest" : "user",
      });
    const linked = { ...user, teamsUser };
    this.directory.update(linked);
    return linked;
  }

  private chatIdFor(user: GraphSimUser): string {
    if (
      this.chatIds === "teams-conversation" &&
      this.teams !== undefined &&
      user.teamsUser !== undefined
    )
      return this.teams.personalConversationId(user.teamsUser);
    const botAppId = (this.teams?.botId ?? "28:00000000-0000-4000-8000-000000000001").replace(
      /^28:/,
      "",
    );
    return `19:${user.id}_${botAppId}@unq.gbl.spaces`;
  }

  private scheduleActivities(user: GraphSimUser): void {
    if (
      this.installActivities === "off" ||
      this.teams === undefined ||
      user.teamsUser === undefined
    )
      return;
    const teamsUser: SimUser = user.teamsUser;
    const install = this.teams.activities.personalInstall(teamsUser, "add");
    const update = this.teams.activities.personalConversationUpdate(teamsUser);
    const activities =
      this.activityOrder === "installation-first" ? [install, update] : [update, install];
    if (this.installActivities === "manual") {
      this.heldActivities.push({ user, activities });
      return;
    }
    const run = (async () => {
      if (this.activityDelayMs > 0) await sleep(this.activityDelayMs);
      await this.post(user, activities);
    })();
    this.inflight.add(run);
    void run.finally(() => this.inflight.delete(run));
  }

  private async post(user: GraphSimUser, activities: readonly TeamsActivity[]): Promise<void> {
    const teams = this.teams;
    if (teams === undefined) return;
    for (const activity of activities) {
      let status: number;
      try {
        if (this.botEndpoint === undefined) throw new Error("no bot endpoint yet");
        status = (await teams.send(activity, { endpoint: this.botEndpoint })).status;
      } catch {
        status = -1; // the bot was not listening: recorded, not thrown (Teams does not retry either)
      }
      this.posted.push({
        userId: user.id,
        type: activity.type as PostedInstallActivity["type"],
        conversationId: activity.conversation.id,
        status,
        at: this.clock(),
      });
    }
    if (this.chatAvailability === "after-activities") this.makeChatAvailable(user);
  }
}

function match(method: string, pathname: string): Matched | undefined {
  let parts: string[];
  try {
    parts = pathname
      .split("/")
      .filter((p) => p !== "")
      .map((p) => decodeURIComponent(p));
  } catch {
    return undefined;
  }
  if (parts[0] !== "v1.0") return undefined;
  const [, collection, key, sub, sub2, sub3, sub4, ...extra] = parts;
  if (extra.length > 0 || key === undefined) return undefined;
  if (collection === "appCatalogs")
    return key === "teamsApps" && sub === undefined && method === "GET"
      ? { route: "listCatalogApps" }
      : undefined;
  if (collection === "users") {
    if (sub === undefined) return method === "GET" ? { route: "getUser", userKey: key } : undefined;
    if (sub === "teamwork" && sub2 === "installedApps") {
      if (sub3 === undefined) {
        if (method === "GET") return { route: "listInstalledApps", userKey: key };
        if (method === "POST") return { route: "installApp", userKey: key };
        return undefined;
      }
      if (sub4 === "chat" && method === "GET")
        return { route: "getInstalledAppChat", userKey: key, installationId: sub3 };
    }
    return undefined;
  }
  if (
    collection === "groups" &&
    sub === "transitiveMembers" &&
    sub2 === "microsoft.graph.user" &&
    sub3 === undefined &&
    method === "GET"
  )
    return { route: "listGroupUserMembers", groupId: key.toLowerCase() };
  return undefined;
}

function userJson(user: GraphSimUser): Record<string, unknown> {
  return {
    id: user.id,
    userPrincipalName: user.userPrincipalName,
    displayName: user.displayName,
    userType: user.userType,
    mail: user.userType === "Guest" ? null : user.userPrincipalName,
  };
}

function appJson(app: CatalogApp): Record<string, unknown> {
  return {
    id: app.id,
    externalId: app.externalId,
    displayName: app.displayName,
    distributionMethod: "organization",
  };
}

/** `$select=a,b`: only those properties (Graph always adds nothing else; `id` only if asked). */
function select(
  object: Record<string, unknown>,
  fields: string | undefined,
): Record<string, unknown> {
  if (fields === undefined) return object;
  const wanted = fields.split(",").map((f) => f.trim());
  return Object.fromEntries(Object.entries(object).filter(([k]) => wanted.includes(k)));
}

function faultAnswer(spec: GraphFaultSpec): Answer {
  const headers: Record<string, string> = {};
  const retryAfter =
    spec.retryAfter === undefined ? (spec.status === 429 ? 1 : undefined) : spec.retryAfter;
  if (retryAfter !== undefined && retryAfter !== null) headers["retry-after"] = String(retryAfter);
  if (spec.rawBody !== undefined) return { status: spec.status, raw: spec.rawBody, headers };
  return { status: spec.status, headers, body: spec.body ?? graphError(spec.status, spec.code) };
}

function encodeSkipToken(groupId: string, offset: number): string {
  return Buffer.from(JSON.stringify({ g: groupId, o: offset }), "utf8").toString("base64url");
}

function decodeSkipToken(token: string, groupId: string): number | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as {
      g?: unknown;
      o?: unknown;
    };
    if (
      parsed.g !== groupId ||
      typeof parsed.o !== "number" ||
      !Number.isInteger(parsed.o) ||
      parsed.o < 0
    )
      return undefined;
    return parsed.o;
  } catch {
    return undefined;
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Starts a Graph simulator on 127.0.0.1 and a free port. Close it with `await sim.close()`. */
export async function startGraphSimulator(
  options: GraphSimulatorOptions = {},
): Promise<GraphSimulator> {
  return GraphSimulator.start(options);
}
