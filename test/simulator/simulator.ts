import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import type { TeamsOperation } from "../../shared/teams-limits";
import { ActivityBuilders } from "./activities";
import {
  type ConversationInfo,
  Directory,
  newBotId,
  type NewTeam,
  type NewUser,
} from "./directory";
import { FaultPlan, teamsError } from "./faults";
import { TeamsRateLimiter } from "./rate-limiter";
import type {
  ChatMessage,
  FaultRateSpec,
  FaultSpec,
  PostedActivity,
  RecordedRequest,
  RouteName,
  SendResult,
  SimTeam,
  SimulatorStats,
  SimUser,
  TeamsActivity,
} from "./types";

export interface TeamsSimulatorOptions {
  /** Tenant id (default a random GUID). */
  tenantId?: string;
  /** The bot's Teams id, `28:<app id>` (default a random one). */
  botId?: string;
  /** The bot's display name, used in @mentions (default "Herald"). */
  botName?: string;
  /** Added to every answer (ms). */
  latencyMs?: number;
  /** Answer 429 past Teams' documented limits (shared/teams-limits.ts). Default off. */
  enforceRateLimits?: boolean;
  /** Where `sim.send` posts activities by default (Herald's `/api/messages`). */
  botEndpoint?: string;
  /** Path under the host, like Teams' regional `amer/` (default none). */
  basePath?: string;
  /** Seed for the fault-rate RNG (default 1). */
  seed?: number;
  /** Clock for timestamps and rate windows (default `Date.now`). */
  clock?: () => number;
  /** Keep parsed request bodies in `sim.requests` (default true; off for long benchmarks). */
  recordBodies?: boolean;
  /**
   * Teams refuses larger activities with 413 MessageSizeTooBig. Default 100 KB: "a bot message
   * may be about 100 KB" (Format your bot messages); the 28 KB figure is incoming webhooks'.
   */
  maxActivityBytes?: number;
  /** Page size when the caller gives none (Teams clamps to 50..500). Default 200. */
  defaultPageSize?: number;
  /** Port on 127.0.0.1 (default 0: a free one). */
  port?: number;
}

export interface BlockOptions {
  /** Error code (default ConversationBlockedByUser). */
  code?: string;
  subCode?: string;
  /** Routes refused for that user's 1:1 (default sendActivity and updateActivity). */
  routes?: readonly RouteName[];
}

interface Answer {
  status: number;
  body?: unknown;
  /** Written as is (a malformed answer), with `headers` naming its content type. */
  raw?: string;
  headers?: Record<string, string>;
}

interface Matched {
  route: RouteName;
  /** Conversation or team id from the path, decoded. */
  id?: string;
  /** Activity id (reply, update, delete) or member id, decoded. */
  subId?: string;
}

const SEND_ROUTES = new Set<RouteName>(["sendActivity", "updateActivity", "deleteActivity"]);
const MEMBER_ROUTES = new Set<RouteName>(["pagedMembers", "members", "member"]);
const MAX_BODY_BYTES = 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringAt(value: unknown, ...path: string[]): string | undefined {
  let current: unknown = value;
  for (const key of path) {
    if (!isObject(current)) return undefined;
    current = current[key];
  }
  return typeof current === "string" ? current : undefined;
}

/** The TeamsChannelAccount JSON the connector answers for a member. */
function memberJson(user: SimUser): Record<string, string> {
  return {
    id: user.id,
    name: user.name,
    aadObjectId: user.aadObjectId,
    givenName: user.givenName,
    surname: user.surname,
    email: user.email,
    userPrincipalName: user.userPrincipalName,
    tenantId: user.tenantId,
    userRole: user.userRole,
  };
}

/**
 * A local stand-in for the Teams Bot Connector service: real HTTP, the routes Herald calls,
 * a tenant with users and teams, recording, fault injection and Teams' rate limits.
 * Start it with `startTeamsSimulator`.
 */
export class TeamsSimulator {
  readonly tenantId: string;
  readonly botId: string;
  readonly botName: string;
  readonly activities: ActivityBuilders;

  private readonly directory: Directory;
  private readonly faults: FaultPlan;
  private readonly limiter = new TeamsRateLimiter();
  private readonly clock: () => number;
  private readonly recordBodies: boolean;
  private readonly maxActivityBytes: number;
  private readonly defaultPageSize: number;
  private readonly basePath: string;
  private readonly botEndpoint: string | undefined;
  private enforceRateLimits: boolean;
  private latencyMs: number;
  private readonly routeLatency = new Map<RouteName, number>();
  private recorded: RecordedRequest[] = [];
  /** Base conversation id (no `;messageid=`) -> activities posted there, in order. */
  private posted = new Map<string, PostedActivity[]>();
  private postedById = new Map<string, PostedActivity>();
  private readonly blocked = new Map<string, BlockOptions>();
  private counts = new Map<RouteName, Map<number, number>>();
  private rateLimitedCount = 0;
  private injectedCount = 0;
  private activitySeq = 0;
  private readonly activityBase: number;
  private port = 0;

  private constructor(
    private readonly server: Server,
    options: TeamsSimulatorOptions,
  ) {
    this.tenantId = options.tenantId ?? randomUUID();
    this.botId = options.botId ?? newBotId();
    this.botName = options.botName ?? "Herald";
    this.clock = options.clock ?? Date.now;
    this.recordBodies = options.recordBodies ?? true;
    this.maxActivityBytes = options.maxActivityBytes ?? 100_000;
    this.defaultPageSize = options.defaultPageSize ?? 200;
    this.enforceRateLimits = options.enforceRateLimits ?? false;
    this.latencyMs = options.latencyMs ?? 0;
    this.botEndpoint = options.botEndpoint;
    this.basePath = (options.basePath ?? "").replace(/^\/+|\/+$/g, "");
    this.directory = new Directory(this.tenantId);
    this.faults = new FaultPlan(options.seed ?? 1);
    this.activityBase = this.clock();
    this.activities = new ActivityBuilders({
      serviceUrl: () => this.serviceUrl,
      tenantId: this.tenantId,
      botId: this.botId,
      botName: this.botName,
      directory: this.directory,
      now: () => this.clock(),
      nextActivityId: () => this.nextActivityId(),
    });
  }

  /** @internal use `startTeamsSimulator`. */
  static async start(options: TeamsSimulatorOptions = {}): Promise<TeamsSimulator> {
    const server = createServer();
    const sim = new TeamsSimulator(server, options);
    server.on("request", (req, res) => {
      sim.handle(req, res).catch((error: unknown) => {
        // A bug in the simulator itself: answer like a broken service and keep serving.
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "application/json" });
          res.end(JSON.stringify(teamsError(500, "SimulatorBug", String(error))));
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

  /** `http://127.0.0.1:<port>/` (plus the base path): what inbound activities carry. */
  get serviceUrl(): string {
    return `http://127.0.0.1:${this.port}/${this.basePath === "" ? "" : `${this.basePath}/`}`;
  }

  // ---- tenant ------------------------------------------------------------------------------

  addUser(input: NewUser = {}): SimUser {
    return this.directory.addUser(input);
  }

  /** `tenantId`: users of another tenant (1:1 chats only), with rate limits of their own. */
  addUsers(count: number, options: Pick<NewUser, "tenantId"> = {}): SimUser[] {
    return this.directory.addUsers(count, options);
  }

  addTeam(input: NewTeam = {}): SimTeam {
    return this.directory.addTeam(input);
  }

  /** The team as it is now (roster included), by object or id. */
  team(teamOrId: SimTeam | string): SimTeam | undefined {
    return this.directory.team(teamOrId);
  }

  /** By `29:` id, AAD object id or UPN. */
  findUser(key: string): SimUser | undefined {
    return this.directory.findUser(key);
  }

  addMembers(team: SimTeam | string, users: readonly SimUser[]): void {
    this.directory.addMembers(team, users);
  }

  removeMembers(team: SimTeam | string, users: readonly SimUser[]): void {
    this.directory.removeMembers(team, users);
  }

  /** The stable 1:1 id Teams returns for that user (the same every time). */
  personalConversationId(user: SimUser): string {
    return this.directory.personalConversationId(user);
  }

  /**
   * The user deleted their chat with the bot: the old id answers 404 ConversationNotFound,
   * and the next create for the user answers a new id. Returns the old id.
   */
  deletePersonalConversation(user: SimUser): string | undefined {
    return this.directory.deletePersonalConversation(user);
  }

  /** Refuse the user's 1:1 with a 403 until `unblockUser` (blocked bot, uninstalled app…). */
  blockUser(user: SimUser, options: BlockOptions = {}): void {
    this.blocked.set(user.id, options);
  }

  unblockUser(user: SimUser): void {
    this.blocked.delete(user.id);
  }

  // ---- recording ---------------------------------------------------------------------------

  get requests(): readonly RecordedRequest[] {
    return this.recorded;
  }

  /** Requests answered on a route (optionally only with this status). */
  countRoute(route: RouteName, status?: number): number {
    let count = 0;
    for (const r of this.recorded)
      if (r.route === route && (status === undefined || r.status === status)) count += 1;
    return count;
  }

  /** Activities posted to a conversation (a channel's thread replies included), oldest first. */
  activitiesIn(conversationId: string): PostedActivity[] {
    return [...(this.posted.get(baseConversationId(conversationId)) ?? [])];
  }

  /** Message activities in every 1:1 conversation the user has had with the bot. */
  messagesToUser(user: SimUser): PostedActivity[] {
    const result: PostedActivity[] = [];
    for (const [conversationId, list] of this.posted) {
      const info = this.directory.conversation(conversationId);
      if (info?.kind !== "personal" || info.user?.id !== user.id) continue;
      for (const a of list) if (a.type === "message") result.push(a);
    }
    return result.sort((a, b) => a.postedAt - b.postedAt);
  }

  /**
   * What the user sees in their 1:1 chats with the bot now: each message the bot posted there,
   * as last updated, oldest first, with Teams' markers: `edited` once the bot replaced it (PUT),
   * `deleted` (Teams shows "This message has been deleted." in its place).
   */
  chatOf(user: SimUser): ChatMessage[] {
    return this.messagesToUser(user).map((a) => ({
      id: a.id,
      text: a.deleted ? undefined : a.text,
      attachments: a.deleted ? undefined : a.attachments,
      edited: a.updatedAt !== undefined,
      deleted: a.deleted,
    }));
  }

  /** Every activity posted anywhere, oldest first. */
  allActivities(): PostedActivity[] {
    return [...this.postedById.values()];
  }

  stats(): SimulatorStats {
    const byRoute: Partial<Record<RouteName, Record<number, number>>> = {};
    let total = 0;
    for (const [route, statuses] of this.counts) {
      const entry: Record<number, number> = {};
      for (const [status, n] of statuses) {
        entry[status] = n;
        total += n;
      }
      byRoute[route] = entry;
    }
    return {
      byRoute,
      total,
      rateLimited: this.rateLimitedCount,
      injectedFaults: this.injectedCount,
    };
  }

  // ---- behaviour ---------------------------------------------------------------------------

  /** The next matching request(s) on `route` (or `"*"`: any route) get this answer. */
  failNext(route: RouteName | "*", spec: FaultSpec): void {
    this.faults.failNext(route, spec);
  }

  /** Random faults for chaos tests (repeatable with `seed`). `rate: 0` turns them off. */
  setFaultRate(spec: FaultRateSpec): void {
    this.faults.setFaultRate(spec);
  }

  /** Added delay for every answer, or only for one route's answers. */
  setLatency(ms: number, route?: RouteName): void {
    if (!(ms >= 0)) throw new Error("simulator: latency must be >= 0");
    if (route === undefined) this.latencyMs = ms;
    else this.routeLatency.set(route, ms);
  }

  setRateLimits(enforce: boolean): void {
    this.enforceRateLimits = enforce;
  }

  /**
   * Forget requests, posted activities, faults, latency, blocks, rate windows and stats.
   * The tenant (users, teams, conversation ids) stays.
   */
  reset(): void {
    this.recorded = [];
    this.posted = new Map();
    this.postedById = new Map();
    this.counts = new Map();
    this.rateLimitedCount = 0;
    this.injectedCount = 0;
    this.faults.reset();
    this.limiter.reset();
    this.routeLatency.clear();
    this.latencyMs = 0;
    this.blocked.clear();
  }

  /** Polls `condition` until it holds; throws with `description` after `timeoutMs`. */
  async waitFor(
    condition: () => boolean,
    options: { timeoutMs?: number; intervalMs?: number; description?: string } = {},
  ): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 5000);
    while (!condition()) {
      if (Date.now() > deadline)
        throw new Error(`simulator: timed out waiting for ${options.description ?? "condition"}`);
      await sleep(options.intervalMs ?? 10);
    }
  }

  // ---- inbound -----------------------------------------------------------------------------

  /** POSTs an activity to the bot endpoint as Teams does (JSON). */
  async send(
    activity: TeamsActivity | Record<string, unknown>,
    options: { endpoint?: string; headers?: Record<string, string> } = {},
  ): Promise<SendResult> {
    const endpoint = options.endpoint ?? this.botEndpoint;
    if (endpoint === undefined)
      throw new Error("simulator: no endpoint (pass { endpoint } or options.botEndpoint)");
    const response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8", ...options.headers },
      body: JSON.stringify(activity),
    });
    const text = await response.text();
    let body: unknown = text === "" ? undefined : text;
    if (text !== "" && (response.headers.get("content-type") ?? "").includes("json")) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const headers: Record<string, string> = {};
    response.headers.forEach((value, key) => {
      headers[key] = value;
    });
    return { status: response.status, body, headers };
  }

  async close(): Promise<void> {
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
    const matched = this.match(method, url.pathname);
    const { raw, size } = await readBody(req);

    let body: unknown;
    let badJson = false;
    if (raw.length > 0 && size <= MAX_BODY_BYTES) {
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        badJson = true;
      }
    }
    const record: RecordedRequest = {
      method,
      path: url.pathname,
      query,
      route: matched?.route ?? "unknown",
      conversationId: matched?.id,
      tenantId: this.tenantOf(matched, body),
      body: this.recordBodies ? body : undefined,
      headers: this.recordBodies ? req.headers : {},
      status: 0,
      outcome: "pending",
      at,
    };
    this.recorded.push(record);

    const answer = this.decide(matched, method, body, badJson, size, query, at, record);
    const latency = this.routeLatency.get(record.route) ?? this.latencyMs;
    if (latency > 0) await sleep(latency);

    if (answer === "reset") {
      record.status = -1;
      this.count(record.route, -1);
      req.socket.destroy();
      return;
    }
    record.status = answer.status;
    this.count(record.route, answer.status);
    const headers: Record<string, string> = { ...answer.headers };
    if (answer.raw !== undefined) {
      res.writeHead(answer.status, headers);
      res.end(answer.raw);
    } else if (answer.body === undefined) {
      res.writeHead(answer.status, headers);
      res.end();
    } else {
      headers["content-type"] = "application/json; charset=utf-8";
      res.writeHead(answer.status, headers);
      res.end(JSON.stringify(answer.body));
    }
  }

  private decide(
    matched: Matched | undefined,
    method: string,
    body: unknown,
    badJson: boolean,
    bytes: number,
    query: Record<string, string>,
    now: number,
    record: RecordedRequest,
  ): Answer | "reset" {
    if (matched === undefined) {
      record.outcome = "handled";
      return { status: 404, body: teamsError(404, "NotFound", `No route for ${method}`) };
    }
    const route = matched.route;
    const conversation =
      matched.id === undefined ? undefined : this.directory.conversation(matched.id);
    const user = this.userConcerned(route, conversation, body);

    const fault = this.faults.take({ route, conversationId: matched.id, user });
    if (fault !== undefined) {
      this.injectedCount += 1;
      record.outcome = "fault";
      if (fault.status === "connection-reset") return "reset";
      const headers: Record<string, string> = {};
      const retryAfter =
        fault.retryAfterSeconds === undefined
          ? fault.status === 429
            ? 1
            : undefined
          : fault.retryAfterSeconds;
      if (retryAfter !== undefined && retryAfter !== null)
        headers["retry-after"] = String(retryAfter);
      if (fault.rawBody !== undefined) {
        headers["content-type"] = fault.contentType ?? "text/html";
        return { status: fault.status, headers, raw: fault.rawBody };
      }
      return {
        status: fault.status,
        headers,
        body: fault.body ?? teamsError(fault.status, fault.code, fault.message, fault.subCode),
      };
    }

    if (this.enforceRateLimits) {
      const operation = operationOf(route);
      if (operation !== undefined) {
        const verdict = this.limiter.check(
          {
            operation,
            botId: this.botOf(route, body),
            tenantId: record.tenantId,
            conversationId:
              route === "createConversation"
                ? user === undefined
                  ? `member:${stringAt(firstMember(body), "id") ?? "?"}`
                  : this.directory.personalConversationId(user)
                : (matched.id ?? ""),
          },
          now,
        );
        if (!verdict.allowed) {
          this.rateLimitedCount += 1;
          record.outcome = "rateLimited";
          return {
            status: 429,
            headers: { "retry-after": String(verdict.retryAfterSeconds) },
            body: teamsError(429, "Throttled", `Too many requests (${verdict.limit ?? "limit"}).`),
          };
        }
      }
    }

    record.outcome = "handled";
    if (bytes > MAX_BODY_BYTES)
      return { status: 413, body: teamsError(413, "MessageSizeTooBig", "Request too large.") };
    if (badJson) return { status: 400, body: teamsError(400, "BadArgument", "Body is not JSON.") };
    switch (route) {
      case "createConversation":
        return this.createConversation(body, user);
      case "sendActivity":
        return this.sendActivity(matched, conversation, user, body, bytes, now);
      case "updateActivity":
        return this.updateActivity(matched, conversation, user, body, bytes, now);
      case "deleteActivity":
        return this.deleteActivity(matched, conversation);
      case "pagedMembers":
        return this.pagedMembers(conversation, query);
      case "members":
        return conversation === undefined
          ? conversationNotFound()
          : { status: 200, body: this.directory.members(conversation).map(memberJson) };
      case "member":
        return this.member(conversation, matched.subId ?? "");
      case "teamConversations":
        return this.teamConversations(matched.id ?? "");
      case "teamDetails":
        return this.teamDetails(matched.id ?? "");
      case "unknown":
        return { status: 404, body: teamsError(404, "NotFound", "No such route.") };
    }
  }

  private createConversation(body: unknown, user: SimUser | undefined): Answer {
    if (!isObject(body)) return badArgument("Body must be a ConversationParameters object.");
    if (body.isGroup === true) return badArgument("Bots cannot create group conversations.");
    const members = body.members;
    if (!Array.isArray(members) || members.length !== 1)
      return badArgument("members must hold exactly one member for a 1:1 conversation.");
    const memberId = stringAt(members[0], "id");
    if (memberId === undefined || memberId === "") return badArgument("members[0].id is required.");
    const tenant = stringAt(body, "tenantId") ?? stringAt(body, "channelData", "tenant", "id");
    if (tenant === undefined) return badArgument("channelData.tenant.id is required.");
    if (!this.directory.hasTenant(tenant)) return badArgument(`Unknown tenant ${tenant}.`);
    if (user === undefined || user.tenantId !== tenant)
      return memberId.startsWith("29:")
        ? badArgument("Failed to decrypt pairwise id")
        : { status: 404, body: teamsError(404, "NotFound", "User not found in tenant.") };
    const blocked = this.blocked.get(user.id);
    if (blocked?.routes?.includes("createConversation") === true)
      return { status: 403, body: teamsError(403, blocked.code, undefined, blocked.subCode) };

    const id = this.directory.personalConversationId(user);
    if (isObject(body.activity)) {
      const posted = this.store(id, undefined, body.activity, this.clock());
      return { status: 201, body: { id, activityId: posted.id } };
    }
    return { status: 201, body: { id } };
  }

  private sendActivity(
    matched: Matched,
    conversation: ConversationInfo | undefined,
    user: SimUser | undefined,
    body: unknown,
    bytes: number,
    now: number,
  ): Answer {
    const refused = this.refuseWrite(conversation, user, "sendActivity", body, bytes);
    if (refused !== undefined) return refused;
    const posted = this.store(
      matched.id ?? "",
      matched.subId,
      body as Record<string, unknown>,
      now,
    );
    return { status: 201, body: { id: posted.id } };
  }

  private updateActivity(
    matched: Matched,
    conversation: ConversationInfo | undefined,
    user: SimUser | undefined,
    body: unknown,
    bytes: number,
    now: number,
  ): Answer {
    const refused = this.refuseWrite(conversation, user, "updateActivity", body, bytes);
    if (refused !== undefined) return refused;
    const existing = this.postedById.get(activityKey(matched.id ?? "", matched.subId ?? ""));
    if (existing === undefined || existing.deleted)
      return { status: 404, body: teamsError(404, "NotFound", "Activity not found.") };
    const activity = body as Record<string, unknown>;
    if (this.recordBodies) existing.previousVersions.push(existing.activity);
    existing.activity = this.recordBodies ? activity : {};
    existing.type = typeof activity.type === "string" ? activity.type : existing.type;
    existing.text = typeof activity.text === "string" ? activity.text : undefined;
    existing.attachments = Array.isArray(activity.attachments) ? activity.attachments : undefined;
    existing.updatedAt = now;
    return { status: 200, body: { id: existing.id } };
  }

  private deleteActivity(matched: Matched, conversation: ConversationInfo | undefined): Answer {
    if (conversation === undefined || this.directory.deletedConversations.has(conversation.id))
      return conversationNotFound();
    const existing = this.postedById.get(activityKey(matched.id ?? "", matched.subId ?? ""));
    if (existing === undefined || existing.deleted)
      return { status: 404, body: teamsError(404, "NotFound", "Activity not found.") };
    existing.deleted = true;
    return { status: 200 };
  }

  /** The checks Teams makes before accepting a posted or updated activity. */
  private refuseWrite(
    conversation: ConversationInfo | undefined,
    user: SimUser | undefined,
    route: RouteName,
    body: unknown,
    bytes: number,
  ): Answer | undefined {
    if (conversation === undefined || this.directory.deletedConversations.has(conversation.id))
      return conversationNotFound();
    if (user !== undefined) {
      const blocked = this.blocked.get(user.id);
      if (
        blocked !== undefined &&
        (blocked.routes ?? ["sendActivity", "updateActivity"]).includes(route)
      )
        return { status: 403, body: teamsError(403, blocked.code, undefined, blocked.subCode) };
    }
    if (bytes > this.maxActivityBytes)
      return { status: 413, body: teamsError(413, "MessageSizeTooBig", "Message size too large.") };
    if (!isObject(body) || typeof body.type !== "string" || body.type === "")
      return badArgument("Activity type is required.");
    if (body.type === "message") {
      const hasText = typeof body.text === "string" && body.text.trim() !== "";
      const hasAttachments = Array.isArray(body.attachments) && body.attachments.length > 0;
      if (!hasText && !hasAttachments)
        return badArgument("Message has no text and no attachments.");
    }
    return undefined;
  }

  private pagedMembers(
    conversation: ConversationInfo | undefined,
    query: Record<string, string>,
  ): Answer {
    if (conversation === undefined) return conversationNotFound();
    let pageSize = this.defaultPageSize;
    if (query.pageSize !== undefined) {
      const parsed = Number(query.pageSize);
      if (!Number.isInteger(parsed)) return badArgument("pageSize must be an integer.");
      pageSize = parsed;
    }
    // Teams raises a page size under 50 to 50 and lowers one over 500 to 500.
    pageSize = Math.min(500, Math.max(50, pageSize));
    let offset = 0;
    const token = query.continuationToken;
    if (token !== undefined && token !== "") {
      const decoded = decodeToken(token);
      if (decoded === undefined || decoded.conversationId !== conversation.id)
        return badArgument("Invalid continuation token.");
      offset = decoded.offset;
    }
    const members = this.directory.memberPage(conversation, offset, pageSize).map(memberJson);
    const next = offset + members.length;
    const more = next < this.directory.memberCount(conversation);
    return {
      status: 200,
      body: more ? { continuationToken: encodeToken(conversation.id, next), members } : { members },
    };
  }

  private member(conversation: ConversationInfo | undefined, memberId: string): Answer {
    if (conversation === undefined) return conversationNotFound();
    const user = this.directory.memberOf(conversation, memberId);
    if (user === undefined)
      return {
        status: 404,
        body: teamsError(
          404,
          "MemberNotFoundInConversation",
          "The specified member is not found in the conversation.",
        ),
      };
    return { status: 200, body: memberJson(user) };
  }

  private teamConversations(teamId: string): Answer {
    const team = this.directory.team(teamId.split(";")[0] ?? teamId);
    if (team === undefined)
      return { status: 404, body: teamsError(404, "NotFound", "Team not found.") };
    return {
      status: 200,
      body: {
        conversations: team.channels.map((c) => (c.name === undefined ? { id: c.id } : { ...c })),
      },
    };
  }

  private teamDetails(teamId: string): Answer {
    const team = this.directory.team(teamId.split(";")[0] ?? teamId);
    if (team === undefined)
      return { status: 404, body: teamsError(404, "NotFound", "Team not found.") };
    const info = this.directory.conversation(team.id);
    return {
      status: 200,
      body: {
        id: team.id,
        name: team.name,
        aadGroupId: team.aadGroupId,
        channelCount: team.channels.length,
        memberCount: info === undefined ? 0 : this.directory.memberCount(info),
        type: "standard",
      },
    };
  }

  private store(
    conversationId: string,
    replyToId: string | undefined,
    activity: Record<string, unknown>,
    now: number,
  ): PostedActivity {
    const posted: PostedActivity = {
      id: this.nextActivityId(),
      conversationId,
      replyToId,
      type: typeof activity.type === "string" ? activity.type : "message",
      text: typeof activity.text === "string" ? activity.text : undefined,
      attachments: Array.isArray(activity.attachments) ? activity.attachments : undefined,
      // Long benchmarks turn bodies off to keep memory flat; text and type stay.
      activity: this.recordBodies ? activity : {},
      postedAt: now,
      updatedAt: undefined,
      previousVersions: [],
      deleted: false,
    };
    const base = baseConversationId(conversationId);
    let list = this.posted.get(base);
    if (list === undefined) {
      list = [];
      this.posted.set(base, list);
    }
    list.push(posted);
    this.postedById.set(activityKey(conversationId, posted.id), posted);
    return posted;
  }

  private match(method: string, pathname: string): Matched | undefined {
    let rest = pathname;
    if (this.basePath !== "") {
      const prefix = `/${this.basePath}`;
      if (!rest.startsWith(`${prefix}/`)) return undefined;
      rest = rest.slice(prefix.length);
    }
    let parts: string[];
    try {
      parts = rest
        .split("/")
        .filter((p) => p !== "")
        .map((p) => decodeURIComponent(p));
    } catch {
      return undefined;
    }
    if (parts[0] !== "v3") return undefined;
    const [, collection, id, sub, subId, ...extra] = parts;
    if (extra.length > 0) return undefined;
    if (collection === "conversations") {
      if (id === undefined) return method === "POST" ? { route: "createConversation" } : undefined;
      if (sub === "activities") {
        if (subId === undefined)
          return method === "POST" ? { route: "sendActivity", id } : undefined;
        if (method === "POST") return { route: "sendActivity", id, subId };
        if (method === "PUT") return { route: "updateActivity", id, subId };
        if (method === "DELETE") return { route: "deleteActivity", id, subId };
        return undefined;
      }
      if (method !== "GET") return undefined;
      if (sub === "pagedmembers" && subId === undefined) return { route: "pagedMembers", id };
      if (sub === "members")
        return subId === undefined ? { route: "members", id } : { route: "member", id, subId };
      return undefined;
    }
    if (collection === "teams" && id !== undefined && method === "GET" && subId === undefined) {
      if (sub === undefined) return { route: "teamDetails", id };
      if (sub === "conversations") return { route: "teamConversations", id };
    }
    return undefined;
  }

  /** The user a request is about: the target of a create, the other side of a 1:1. */
  private userConcerned(
    route: RouteName,
    conversation: ConversationInfo | undefined,
    body: unknown,
  ): SimUser | undefined {
    if (route === "createConversation") {
      const memberId = stringAt(firstMember(body), "id");
      return memberId === undefined ? undefined : this.directory.findUser(memberId);
    }
    return conversation?.kind === "personal" ? conversation.user : undefined;
  }

  /** The tenant a call counts against: a 1:1's user's (create included), else the simulator's. */
  private tenantOf(matched: Matched | undefined, body: unknown): string {
    if (matched === undefined) return this.tenantId;
    const conversation =
      matched.id === undefined ? undefined : this.directory.conversation(matched.id);
    return this.userConcerned(matched.route, conversation, body)?.tenantId ?? this.tenantId;
  }

  private botOf(route: RouteName, body: unknown): string {
    if (route === "createConversation") return stringAt(body, "bot", "id") ?? this.botId;
    if (SEND_ROUTES.has(route)) {
      const from = stringAt(body, "from", "id");
      if (from?.startsWith("28:") === true) return from;
    }
    return this.botId;
  }

  private count(route: RouteName, status: number): void {
    let statuses = this.counts.get(route);
    if (statuses === undefined) {
      statuses = new Map();
      this.counts.set(route, statuses);
    }
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  }

  private nextActivityId(): string {
    this.activitySeq += 1;
    return String(this.activityBase + this.activitySeq);
  }
}

function operationOf(route: RouteName): TeamsOperation | undefined {
  if (route === "createConversation") return "createConversation";
  if (SEND_ROUTES.has(route)) return "sendToConversation";
  if (MEMBER_ROUTES.has(route)) return "getConversationMembers";
  if (route === "teamConversations" || route === "teamDetails") return "getConversations";
  return undefined;
}

function firstMember(body: unknown): unknown {
  return isObject(body) && Array.isArray(body.members) ? body.members[0] : undefined;
}

function baseConversationId(id: string): string {
  return id.split(";")[0] ?? id;
}

function activityKey(conversationId: string, activityId: string): string {
  return `${baseConversationId(conversationId)}|${activityId}`;
}

function badArgument(message: string): Answer {
  return { status: 400, body: teamsError(400, "BadArgument", message) };
}

function conversationNotFound(): Answer {
  return { status: 404, body: teamsError(404, "ConversationNotFound", "Conversation not found.") };
}

function encodeToken(conversationId: string, offset: number): string {
  return Buffer.from(JSON.stringify({ c: conversationId, o: offset }), "utf8").toString("base64");
}

function decodeToken(token: string): { conversationId: string; offset: number } | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64").toString("utf8"));
    if (!isObject(parsed) || typeof parsed.c !== "string" || typeof parsed.o !== "number")
      return undefined;
    if (!Number.isInteger(parsed.o) || parsed.o < 0) return undefined;
    return { conversationId: parsed.c, offset: parsed.o };
  } catch {
    return undefined;
  }
}

async function readBody(req: IncomingMessage): Promise<{ raw: Buffer; size: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    // Past this we stop keeping bytes; the size still reaches the 413 check.
    if (size <= MAX_BODY_BYTES) chunks.push(buffer);
  }
  return { raw: Buffer.concat(chunks), size };
}

/** Starts a simulator on 127.0.0.1 and a free port. Close it with `await sim.close()`. */
export async function startTeamsSimulator(
  options: TeamsSimulatorOptions = {},
): Promise<TeamsSimulator> {
  return TeamsSimulator.start(options);
}
