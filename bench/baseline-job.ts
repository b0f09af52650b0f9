import {
  CloudAdapter,
  ConfigurationBotFrameworkAuthentication,
  type ConversationReference,
} from "botbuilder";

import type { BaselineJob, BaselineResult } from "./jobs";
import { RssSampler } from "./stats";

/**
 * The approaches Teams developers use today, against the same simulator as Herald:
 * - botbuilder's proactive-messages sample (BotBuilder-Samples `16.proactive-messages`,
 *   `notify` route): a `CloudAdapter`, a stored `ConversationReference` per user and
 *   `continueConversationAsync` in a loop, one `await` per user ("sequential"), or every user
 *   at once ("promise-all", the usual edit to make it faster);
 * - the TeamsFx notification-bot template ("teamsfx", see `teamsFxLoop`).
 * No storage of outcomes, no pacing; botbuilder's own retry policy (Retry-After honoured,
 * 3 retries). Anonymous (no app id), as Herald's local runs: there is no Entra ID here.
 */
export async function runBaseline(job: BaselineJob): Promise<BaselineResult> {
  const adapter = new CloudAdapter(new ConfigurationBotFrameworkAuthentication({}));
  const references: Partial<ConversationReference>[] = job.references.map((r) => ({
    channelId: "msteams",
    serviceUrl: job.serviceUrl,
    bot: { id: job.botId, name: "Herald" },
    user: { id: r.userId, name: "" },
    conversation: {
      id: r.conversationId,
      conversationType: "personal",
      tenantId: job.tenantId,
      isGroup: false,
      name: "",
    },
  }));
  let succeeded = 0;
  let failed = 0;
  let attempted = 0;
  const errorSamples: string[] = [];
  const notify = async (reference: Partial<ConversationReference>): Promise<void> => {
    attempted += 1;
    try {
      await adapter.continueConversationAsync("", reference, async (context) => {
        await context.sendActivity({ type: "message", text: job.text, textFormat: "markdown" });
      });
      succeeded += 1;
    } catch (error) {
      failed += 1;
      if (errorSamples.length < 3) errorSamples.push(String(error).slice(0, 200));
    }
  };

  const rss = new RssSampler();
  const cpu = process.cpuUsage();
  const startedAt = Date.now();
  const deadline = startedAt + job.capMs;
  if (job.mode === "teamsfx") {
    const sent = await teamsFxLoop(job, references, deadline, errorSamples);
    attempted = sent.attempted;
    succeeded = sent.succeeded;
    failed = sent.failed;
  } else if (job.mode === "sequential") {
    for (const reference of references) {
      if (Date.now() > deadline) break;
      await notify(reference);
    }
  } else {
    // `notify` catches, so one user's failure (a 429 after botbuilder's retries) does not end
    // the loop early as a bare Promise.all over the adapter calls would; every user is tried.
    await Promise.all(references.map((reference) => notify(reference)));
  }
  const endedAt = Date.now();
  const used = process.cpuUsage(cpu);
  return {
    attempted,
    succeeded,
    failed,
    startedAt,
    endedAt,
    cpuMs: Math.round((used.user + used.system) / 1000),
    rssPeakMb: rss.stop(),
    errorSamples,
  };
}

/** The part of TeamsFx 2.x's API the notification-bot template uses. */
interface TeamsFxModule {
  ConversationBot: new (options: {
    adapterConfig: Record<string, string>;
    notification: { enabled: true; storage: NotificationTargetStorage };
  }) => {
    notification: {
      installations(): Promise<{ sendMessage(text: string): Promise<unknown> }[]>;
    };
  };
}

/** TeamsFx's storage port for conversation references (it reads them all to list them). */
interface NotificationTargetStorage {
  read(key: string): Promise<Record<string, unknown> | undefined>;
  list(): Promise<Record<string, unknown>[]>;
  write(key: string, object: Record<string, unknown>): Promise<void>;
  delete(key: string): Promise<void>;
}

/**
 * The Teams Toolkit notification-bot template's loop, on TeamsFx itself:
 * `for (const target of await notification.installations()) await target.sendMessage(…)`.
 * `installations()` first checks every stored installation with a `getPagedMembers(1)` call
 * (dropping those where the bot is gone), one at a time, then the loop sends one at a time:
 * two calls to Teams per user. References come from memory, as the template's default
 * storage would have them after the install events.
 */
async function teamsFxLoop(
  job: BaselineJob,
  references: readonly Partial<ConversationReference>[],
  deadline: number,
  errorSamples: string[],
): Promise<{ attempted: number; succeeded: number; failed: number }> {
  if (job.teamsfxPath === undefined) throw new Error("teamsfx mode without teamsfxPath");
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- TeamsFx lives outside Herald's dependencies (bench/out/teamsfx)
  const { ConversationBot } = require(job.teamsfxPath) as TeamsFxModule;
  const stored = new Map(references.map((r) => [r.conversation!.id, { ...r }]));
  const storage: NotificationTargetStorage = {
    read: (key) => Promise.resolve(stored.get(key)),
    list: () => Promise.resolve([...stored.values()]),
    write: (key, object) => {
      stored.set(key, object);
      return Promise.resolve();
    },
    delete: (key) => {
      stored.delete(key);
      return Promise.resolve();
    },
  };
  const bot = new ConversationBot({
    adapterConfig: { MicrosoftAppId: "", MicrosoftAppPassword: "" },
    notification: { enabled: true, storage },
  });
  let attempted = 0;
  let succeeded = 0;
  let failed = 0;
  for (const target of await bot.notification.installations()) {
    if (Date.now() > deadline) break;
    attempted += 1;
    try {
      await target.sendMessage(job.text);
      succeeded += 1;
    } catch (error) {
      failed += 1;
      if (errorSamples.length < 3) errorSamples.push(String(error).slice(0, 200));
    }
  }
  return { attempted, succeeded, failed };
}
