import { z } from "zod";

/**
 * The Agents Playground's own routes (version 0.2.x; internal to it, not a documented API): its
 * web page calls them when it opens the personal chat. `npm run playground` calls the same ones
 * so the chat exists without a browser.
 */
const ROUTES = {
  ping: "/_debug/ping",
  config: "/_internal/v1/testConfig",
  install: (chat: string) => `/_debug/conversation/${encodeURIComponent(chat)}/installation`,
  stream: "/_ws_conversation/v1/conversations/stream",
} as const;

const configSchema = z.object({
  config: z.object({
    tenantId: z.string(),
    currentUser: z.object({
      id: z.string(),
      name: z.string(),
      userPrincipleName: z.string().optional(),
      aadObjectId: z.string().optional(),
    }),
    personalChat: z.object({ id: z.string() }),
  }),
});

/** What the Playground pushes to its page (`createMessage` is a message posted in a chat). */
const pushSchema = z.object({
  action: z.string(),
  actionConversationId: z.string().optional(),
});

export interface PlaygroundUser {
  readonly tenantId: string;
  readonly name: string;
  readonly userPrincipalName: string | undefined;
  readonly personalChat: string;
}

export type InstallOutcome =
  /** The bot answered in the personal chat (Herald's welcome): it knows the user. */
  | { readonly kind: "welcomed"; readonly user: PlaygroundUser }
  /** Nothing came back in time: Herald welcomes once, so a user it knows already gets nothing. */
  | { readonly kind: "no-welcome"; readonly user: PlaygroundUser; readonly waitedMs: number };

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/** Waits until the Playground at `origin` answers (it takes seconds to start). */
export async function waitForPlayground(origin: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const answer = await fetch(`${origin}${ROUTES.ping}`, { signal: AbortSignal.timeout(2000) });
      if (answer.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline)
      throw new Error(`the Agents Playground at ${origin} did not answer within ${timeoutMs} ms`);
    await sleep(250);
  }
}

/**
 * Installs the bot in the Playground user's personal chat, as Teams does when a user adds the
 * app: the Playground posts `installationUpdate` and `conversationUpdate` to the bot, which
 * records the user (the reference a notification needs) and welcomes them. Resolves once the
 * bot's first message lands in that chat, or after `welcomeTimeoutMs` without one.
 */
export async function installForPlaygroundUser(
  origin: string,
  options: { welcomeTimeoutMs: number },
): Promise<InstallOutcome> {
  const answer = await fetch(`${origin}${ROUTES.config}`, { signal: AbortSignal.timeout(10_000) });
  if (!answer.ok) throw new Error(`${ROUTES.config} answered ${answer.status}`);
  const { config } = configSchema.parse(await answer.json());
  const user: PlaygroundUser = {
    tenantId: config.tenantId,
    name: config.currentUser.name,
    userPrincipalName: config.currentUser.userPrincipleName,
    personalChat: config.personalChat.id,
  };

  const socket = new WebSocket(`${origin.replace(/^http/, "ws")}${ROUTES.stream}`);
  try {
    await new Promise<void>((opened, failed) => {
      socket.addEventListener("open", () => opened(), { once: true });
      socket.addEventListener("error", () => failed(new Error(`${ROUTES.stream}: no connection`)), {
        once: true,
      });
    });
    const welcomed = new Promise<true>((done) => {
      socket.addEventListener("message", (event) => {
        const push = pushSchema.safeParse(safeJson(String(event.data)));
        if (
          push.success &&
          push.data.action === "createMessage" &&
          push.data.actionConversationId === user.personalChat
        )
          done(true);
      });
    });
    const installed = await fetch(`${origin}${ROUTES.install(user.personalChat)}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(10_000),
    });
    if (!installed.ok) throw new Error(`the install answered ${installed.status}`);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      welcomed,
      new Promise<false>(
        (done) => (timer = setTimeout(() => done(false), options.welcomeTimeoutMs)),
      ),
    ]);
    clearTimeout(timer);
    return outcome
      ? { kind: "welcomed", user }
      : { kind: "no-welcome", user, waitedMs: options.welcomeTimeoutMs };
  } finally {
    socket.close();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
