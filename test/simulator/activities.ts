import type { Directory } from "./directory";
import type { SimTeam, SimUser, TeamsActivity } from "./types";

export interface ActivityContext {
  /** A function: the port is known only once the server listens. */
  readonly serviceUrl: () => string;
  readonly tenantId: string;
  readonly botId: string;
  readonly botName: string;
  readonly directory: Directory;
  readonly now: () => number;
  readonly nextActivityId: () => string;
}

export interface ChannelOptions {
  /** A channel of the team other than General (default General). */
  channelId?: string;
}

/**
 * Builders for the activities Teams posts to a bot, shaped like real Teams traffic (ids,
 * channelData, entities). They are pure: roster changes are made with `sim.addMembers` /
 * `sim.removeMembers`, so a test can also send an event that disagrees with the roster.
 */
export class ActivityBuilders {
  constructor(private readonly ctx: ActivityContext) {}

  /** `installationUpdate` in personal scope (action `add`, `add-upgrade`, `remove`, …). */
  personalInstall(user: SimUser, action: InstallAction = "add"): TeamsActivity {
    return {
      ...this.personalBase(user, "installationUpdate"),
      action,
    };
  }

  /** `conversationUpdate` with the bot in `membersAdded`, sent beside a personal install. */
  personalConversationUpdate(user: SimUser): TeamsActivity {
    return {
      ...this.personalBase(user, "conversationUpdate"),
      membersAdded: [{ id: this.ctx.botId }],
    };
  }

  /** The user removed the app from personal scope. */
  personalUninstall(user: SimUser): TeamsActivity {
    return this.personalInstall(user, "remove");
  }

  /** A message the user wrote to the bot in their 1:1 chat. */
  message(user: SimUser, text: string): TeamsActivity {
    return {
      ...this.personalBase(user, "message"),
      text,
      textFormat: "plain",
      attachments: [],
      entities: [this.clientInfo()],
    };
  }

  /**
   * A read receipt: the user read their 1:1 chat with the bot up to `lastReadMessageId` (Teams
   * sends it when the app has `ChatMessageReadReceipt.Read.Chat` and receipts are on).
   */
  readReceipt(user: SimUser, lastReadMessageId: string): TeamsActivity {
    return {
      ...this.personalBase(user, "event"),
      name: "application/vnd.microsoft.readReceipt",
      value: { lastReadMessageId },
    };
  }

  /**
   * A click on an `Action.Execute` button of a card the bot sent (Universal Actions): an invoke
   * named `adaptiveCard/action` whose `value.action.data` is the button's data with the user's
   * inputs merged in. `replyToId` is the message Teams thinks was clicked.
   */
  executeClick(
    user: SimUser,
    action: { verb: string; data: unknown; id?: string },
    replyToId?: string,
  ): TeamsActivity {
    return {
      ...this.personalBase(user, "invoke"),
      name: "adaptiveCard/action",
      ...(replyToId !== undefined ? { replyToId } : {}),
      value: {
        action: {
          type: "Action.Execute",
          id: action.id ?? action.verb,
          verb: action.verb,
          data: action.data,
        },
        trigger: "manual",
      },
    };
  }

  /**
   * A click on an `Action.Submit` button: a message activity with no text whose `value` is the
   * button's data with the user's inputs merged in.
   */
  submitClick(user: SimUser, data: unknown, replyToId?: string): TeamsActivity {
    return {
      ...this.personalBase(user, "message"),
      ...(replyToId !== undefined ? { replyToId } : {}),
      value: data,
      entities: [this.clientInfo()],
    };
  }

  /**
   * An `Action.Submit` whose data has `msteams: { type: "invoke" }`: Teams sends it as an invoke
   * without a name, its value the button's data and the inputs.
   */
  submitInvokeClick(user: SimUser, data: Record<string, unknown>): TeamsActivity {
    return {
      ...this.personalBase(user, "invoke"),
      value: { ...data, msteams: { type: "invoke" } },
      entities: [this.clientInfo()],
    };
  }

  /**
   * The bot added to a team: `conversationUpdate` in the General channel with the bot in
   * `membersAdded` and `channelData.eventType` `teamMemberAdded`.
   */
  teamInstall(team: SimTeam, installer: SimUser): TeamsActivity {
    return {
      ...this.channelBase(team, installer, "conversationUpdate"),
      membersAdded: [{ id: this.ctx.botId }],
      channelData: {
        ...this.teamChannelData(team),
        eventType: "teamMemberAdded",
        settings: { selectedChannel: { id: team.generalChannelId } },
      },
    };
  }

  /** The `installationUpdate` Teams also sends for an install in team scope. */
  teamInstallationUpdate(
    team: SimTeam,
    installer: SimUser,
    action: InstallAction = "add",
  ): TeamsActivity {
    return {
      ...this.channelBase(team, installer, "installationUpdate"),
      action,
      channelData: {
        ...this.teamChannelData(team),
        settings: { selectedChannel: { id: team.generalChannelId } },
      },
    };
  }

  teamMembersAdded(team: SimTeam, users: readonly SimUser[], by?: SimUser): TeamsActivity {
    return {
      ...this.channelBase(team, by ?? users[0], "conversationUpdate"),
      membersAdded: users.map((u) => ({ id: u.id, aadObjectId: u.aadObjectId })),
      channelData: { ...this.teamChannelData(team), eventType: "teamMemberAdded" },
    };
  }

  teamMembersRemoved(team: SimTeam, users: readonly SimUser[], by?: SimUser): TeamsActivity {
    return {
      ...this.channelBase(team, by ?? users[0], "conversationUpdate"),
      membersRemoved: users.map((u) => ({ id: u.id, aadObjectId: u.aadObjectId })),
      channelData: { ...this.teamChannelData(team), eventType: "teamMemberRemoved" },
    };
  }

  /** The bot removed from (uninstalled in) a team. */
  botRemovedFromTeam(team: SimTeam, by?: SimUser): TeamsActivity {
    return {
      ...this.channelBase(team, by, "conversationUpdate"),
      membersRemoved: [{ id: this.ctx.botId }],
      channelData: { ...this.teamChannelData(team), eventType: "teamMemberRemoved" },
    };
  }

  teamDeleted(team: SimTeam, by?: SimUser): TeamsActivity {
    return {
      ...this.channelBase(team, by, "conversationUpdate"),
      channelData: { ...this.teamChannelData(team), eventType: "teamDeleted" },
    };
  }

  teamRenamed(team: SimTeam, newName: string, by?: SimUser): TeamsActivity {
    return {
      ...this.channelBase(team, by, "conversationUpdate"),
      channelData: {
        ...this.teamChannelData({ ...team, name: newName }),
        eventType: "teamRenamed",
      },
    };
  }

  /**
   * A channel message that @mentions the bot and `mentioned`, as Teams renders it:
   * `<at>Herald</at> <at>Alice</at> please review` with one `mention` entity per `<at>`.
   */
  channelMention(
    team: SimTeam,
    from: SimUser,
    mentioned: readonly SimUser[],
    text: string,
    options: ChannelOptions = {},
  ): TeamsActivity {
    const botTag = `<at>${this.ctx.botName}</at>`;
    const tags = mentioned.map((u) => `<at>${u.name}</at>`);
    const base = this.channelBase(team, from, "message", options);
    return {
      ...base,
      // A new channel post is a thread: its conversation id carries the root message id.
      conversation: { ...base.conversation, id: `${base.conversation.id};messageid=${base.id}` },
      text: [botTag, ...tags, text].filter((part) => part !== "").join(" "),
      textFormat: "plain",
      attachments: [
        {
          contentType: "text/html",
          content: `<div><div>${[botTag, ...tags].join(" ")} ${escapeHtml(text)}</div></div>`,
        },
      ],
      entities: [
        {
          type: "mention",
          text: botTag,
          mentioned: { id: this.ctx.botId, name: this.ctx.botName },
        },
        ...mentioned.map((u, i) => ({
          type: "mention",
          text: tags[i],
          mentioned: { id: u.id, name: u.name },
        })),
        this.clientInfo(),
      ],
      channelData: { ...this.teamChannelData(team, options.channelId) },
    };
  }

  private common(
    type: string,
  ): Pick<
    TeamsActivity,
    "type" | "id" | "timestamp" | "localTimestamp" | "locale" | "channelId" | "serviceUrl"
  > {
    const now = new Date(this.ctx.now());
    return {
      type,
      id: this.ctx.nextActivityId(),
      timestamp: now.toISOString(),
      localTimestamp: now.toISOString().replace("Z", "+00:00"),
      locale: "en-US",
      channelId: "msteams",
      serviceUrl: this.ctx.serviceUrl(),
    };
  }

  private personalBase(user: SimUser, type: string): TeamsActivity {
    return {
      ...this.common(type),
      from: { id: user.id, name: user.name, aadObjectId: user.aadObjectId },
      recipient: { id: this.ctx.botId, name: this.ctx.botName },
      conversation: {
        id: this.ctx.directory.personalConversationId(user),
        conversationType: "personal",
        tenantId: this.ctx.tenantId,
      },
      channelData: { tenant: { id: this.ctx.tenantId } },
    };
  }

  private channelBase(
    team: SimTeam,
    from: SimUser | undefined,
    type: string,
    options: ChannelOptions = {},
  ): TeamsActivity {
    // Teams names the acting user; for system events with no actor we use a stable placeholder.
    const actor = from ?? team.members[0];
    return {
      ...this.common(type),
      from:
        actor === undefined
          ? { id: "29:system" }
          : { id: actor.id, name: actor.name, aadObjectId: actor.aadObjectId },
      recipient: { id: this.ctx.botId, name: this.ctx.botName },
      conversation: {
        id: options.channelId ?? team.generalChannelId,
        conversationType: "channel",
        isGroup: true,
        tenantId: this.ctx.tenantId,
      },
      channelData: this.teamChannelData(team, options.channelId),
    };
  }

  private teamChannelData(team: SimTeam, channelId?: string): Record<string, unknown> {
    const channel = team.channels.find((c) => c.id === (channelId ?? team.generalChannelId));
    return {
      tenant: { id: this.ctx.tenantId },
      team: { id: team.id, name: team.name, aadGroupId: team.aadGroupId },
      channel: channel?.name === undefined ? { id: channel?.id ?? team.id } : { ...channel },
    };
  }

  private clientInfo(): Record<string, unknown> {
    return {
      type: "clientInfo",
      locale: "en-US",
      country: "US",
      platform: "Web",
      timezone: "Etc/UTC",
    };
  }
}

export type InstallAction = "add" | "add-upgrade" | "remove" | "remove-upgrade";

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
