/**
 * Microsoft Teams' documented rate limits for bots, in one place: the processor's pacing and
 * the Teams connector simulator (test/simulator) both read these, so Herald is tested against
 * the same numbers it paces itself by.
 *
 * Source: Microsoft Learn, "Rate limiting for bots" (msteams-docs
 * `msteams-platform/bots/how-to/rate-limit.md`), as summarised in TEAMS-FACTS.md, read
 * 2026-01. Teams may split one message into several service calls, so callers should pace a
 * little under these ceilings rather than at them.
 */

export const TEAMS_LIMITS_SOURCE = {
  title: "Rate limiting for bots (Microsoft Learn)",
  url: "https://learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit",
  repositoryPath: "MicrosoftDocs/msteams-docs: msteams-platform/bots/how-to/rate-limit.md",
  retrieved: "2026-01",
} as const;

/** At most `limit` requests in any sliding window of `seconds`. */
export interface RateWindow {
  readonly seconds: number;
  readonly limit: number;
}

/** The Bot Connector operations Teams limits separately. */
export type TeamsOperation =
  "sendToConversation" | "createConversation" | "getConversationMembers" | "getConversations";

const sendWindows: readonly RateWindow[] = [
  { seconds: 1, limit: 7 },
  { seconds: 2, limit: 8 },
  { seconds: 30, limit: 60 },
  { seconds: 3600, limit: 1800 },
];

const readWindows: readonly RateWindow[] = [
  { seconds: 1, limit: 14 },
  { seconds: 2, limit: 16 },
  { seconds: 30, limit: 120 },
  { seconds: 3600, limit: 3600 },
];

/** Per bot, per conversation (thread): each window must hold. */
export const PER_BOT_PER_CONVERSATION_LIMITS: Readonly<
  Record<TeamsOperation, readonly RateWindow[]>
> = {
  sendToConversation: sendWindows,
  createConversation: sendWindows,
  getConversationMembers: readWindows,
  getConversations: readWindows,
};

/**
 * Per conversation, all bots together. Teams documents no all-bots limit for "get
 * conversations"; an empty list means none applies.
 */
export const PER_CONVERSATION_ALL_BOTS_LIMITS: Readonly<
  Record<TeamsOperation, readonly RateWindow[]>
> = {
  sendToConversation: [
    { seconds: 1, limit: 14 },
    { seconds: 2, limit: 16 },
  ],
  createConversation: [
    { seconds: 1, limit: 14 },
    { seconds: 2, limit: 16 },
  ],
  getConversationMembers: [
    { seconds: 1, limit: 28 },
    { seconds: 2, limit: 32 },
  ],
  getConversations: [],
};

/**
 * Every request of one bot app in one tenant, whatever the operation or conversation.
 * Older revisions of the page said 30; the current one says 50.
 */
export const GLOBAL_PER_BOT_PER_TENANT_LIMIT: RateWindow = { seconds: 1, limit: 50 };

/** Messages per hour one bot can send in one tenant at the global ceiling (50 * 3600). */
export const MAX_MESSAGES_PER_HOUR_PER_TENANT =
  GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit * (3600 / GLOBAL_PER_BOT_PER_TENANT_LIMIT.seconds);
