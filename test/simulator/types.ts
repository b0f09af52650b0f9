/** Shapes the Teams connector simulator hands to tests. */

/** The Bot Connector routes the simulator serves, by the name faults and counts use. */
export type RouteName =
  | "createConversation"
  | "sendActivity"
  | "updateActivity"
  | "deleteActivity"
  | "pagedMembers"
  | "members"
  | "member"
  | "teamConversations"
  | "teamDetails"
  | "unknown";

export const ROUTE_NAMES: readonly RouteName[] = [
  "createConversation",
  "sendActivity",
  "updateActivity",
  "deleteActivity",
  "pagedMembers",
  "members",
  "member",
  "teamConversations",
  "teamDetails",
  "unknown",
];

/** A user of the simulated tenant, in the TeamsChannelAccount shape the connector returns. */
export interface SimUser {
  /** Teams user id, unique per bot: `29:…`. */
  readonly id: string;
  readonly aadObjectId: string;
  readonly name: string;
  readonly givenName: string;
  readonly surname: string;
  readonly userPrincipalName: string;
  readonly email: string;
  readonly tenantId: string;
  readonly userRole: "user" | "guest" | "anonymous";
}

export interface SimChannel {
  readonly id: string;
  /** Teams gives the General channel no name; the simulator does the same. */
  readonly name: string | undefined;
}

export interface SimTeam {
  /** `19:…@thread.tacv2`; also the General channel's conversation id. */
  readonly id: string;
  readonly name: string;
  readonly aadGroupId: string;
  readonly generalChannelId: string;
  readonly channels: readonly SimChannel[];
  /** Current roster (changes with `sim.addMembers` / `sim.removeMembers`). */
  readonly members: readonly SimUser[];
}

export interface RecordedRequest {
  readonly method: string;
  /** The URL path as received (still URL-encoded, base path included). */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly route: RouteName;
  /** Decoded conversation or team id from the path, when the route has one. */
  readonly conversationId: string | undefined;
  /**
   * The tenant the call counts against (Teams' per bot per tenant limit): the tenant of the
   * 1:1's user for a create or a 1:1 route, else the simulator's.
   */
  readonly tenantId: string;
  /** Parsed JSON body (undefined when there was none or `recordBodies` is off). */
  readonly body: unknown;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Status answered; 0 while the answer is still pending, -1 when the connection was reset. */
  status: number;
  /** Why the status was chosen: the route itself, an injected fault, or the rate limiter. */
  outcome: "handled" | "fault" | "rateLimited" | "pending";
  /** Arrival time (simulator clock, ms since epoch). */
  readonly at: number;
}

/** An activity the bot posted to a conversation, as the simulator keeps it. */
export interface PostedActivity {
  /** The activity id the simulator assigned and answered with. */
  readonly id: string;
  readonly conversationId: string;
  /** Set when the bot posted a reply (`POST …/activities/{replyToId}`). */
  readonly replyToId: string | undefined;
  type: string;
  text: string | undefined;
  attachments: readonly unknown[] | undefined;
  /** The body as last posted or updated. */
  activity: Record<string, unknown>;
  readonly postedAt: number;
  updatedAt: number | undefined;
  /** Earlier versions, oldest first, when the bot updated it with PUT. */
  readonly previousVersions: Record<string, unknown>[];
  deleted: boolean;
}

/** A message in a chat as the user sees it (`TeamsSimulator.chatOf`). */
export interface ChatMessage {
  readonly id: string;
  /** Undefined once deleted (Teams leaves a placeholder). */
  readonly text: string | undefined;
  readonly attachments: readonly unknown[] | undefined;
  /** Replaced by the bot since it was posted (Teams marks it "Edited"). */
  readonly edited: boolean;
  readonly deleted: boolean;
}

export type FaultStatus =
  200 | 201 | 400 | 401 | 403 | 404 | 409 | 412 | 413 | 429 | 500 | 502 | 503 | 504;

export interface FaultSpec {
  /** HTTP status to answer, or `"connection-reset"` to drop the socket without an answer. */
  status: FaultStatus | "connection-reset";
  /** Teams error code in the body (`ConversationBlockedByUser`, …); a default per status. */
  code?: string;
  message?: string;
  /** Teams' `subCode` (for example `MessageWritesBlocked` on a 403). */
  subCode?: string;
  /** `Retry-After` header value; 429 defaults to 1, `null` sends none. */
  retryAfterSeconds?: number | null;
  /** How many matching requests get this answer (default 1). */
  times?: number;
  /** Only requests about this conversation id. */
  conversationId?: string;
  /** Only requests about this user's 1:1 (create for them, or send to their conversation). */
  user?: SimUser | string;
  /** Replaces the whole JSON body. */
  body?: unknown;
  /**
   * Answers these bytes as the body instead of JSON (with 200 or 201: a success Herald cannot
   * read, as a proxy's error page or a cut-off answer would be).
   */
  rawBody?: string;
  /** Content type of `rawBody` (default `text/html`). */
  contentType?: string;
}

export interface FaultRateSpec {
  /** Probability in [0, 1] that a request gets a random fault. 0 turns it off. */
  rate: number;
  /** Statuses to choose from uniformly (default 429, 500, 502, 503). */
  statuses?: readonly FaultStatus[];
  /** Limit to these routes (default every route). */
  routes?: readonly RouteName[];
  /** Re-seed the simulator's RNG so a chaos run repeats. */
  seed?: number;
}

export interface SimulatorStats {
  /** Requests answered, by route then status. */
  readonly byRoute: Readonly<Partial<Record<RouteName, Readonly<Record<number, number>>>>>;
  readonly total: number;
  /** 429s the rate limiter answered (injected 429s are not counted here). */
  readonly rateLimited: number;
  /** Answers chosen by `failNext` or the fault rate. */
  readonly injectedFaults: number;
}

/** A Teams activity as JSON on the wire (loosely typed on purpose: tests mutate it freely). */
export interface TeamsActivity {
  type: string;
  id: string;
  timestamp: string;
  localTimestamp: string;
  locale: string;
  channelId: "msteams";
  serviceUrl: string;
  from: { id: string; name?: string; aadObjectId?: string };
  recipient: { id: string; name?: string };
  conversation: {
    id: string;
    conversationType: "personal" | "channel" | "groupChat";
    tenantId: string;
    isGroup?: boolean;
    name?: string;
  };
  channelData: Record<string, unknown>;
  [key: string]: unknown;
}

export interface SendResult {
  readonly status: number;
  /** Parsed JSON when the answer was JSON, the text otherwise, undefined when empty. */
  readonly body: unknown;
  readonly headers: Readonly<Record<string, string>>;
}
