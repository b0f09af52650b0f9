import type { Activity } from "botbuilder";

/**
 * The welcome texts. Adaptive Cards 1.4 (what Teams renders everywhere), with a `summary`
 * so notification previews and clients without card support still say something useful.
 */

const ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive";

function card(title: string, paragraphs: readonly string[]): Partial<Activity> {
  return {
    type: "message",
    summary: title,
    attachments: [
      {
        contentType: ADAPTIVE_CARD,
        content: {
          type: "AdaptiveCard",
          $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
          version: "1.4",
          body: [
            { type: "TextBlock", text: title, weight: "Bolder", size: "Medium", wrap: true },
            ...paragraphs.map((p) => ({
              type: "TextBlock",
              text: p,
              wrap: true,
              spacing: "Small",
            })),
          ],
        },
      },
    ],
  };
}

export function personalWelcome(name: string | undefined): Partial<Activity> {
  const first = name?.trim().split(/\s+/)[0];
  return card(first ? `Hi ${first}, I'm Herald 👋` : "Hi, I'm Herald 👋", [
    "I bring you notifications from your organisation's business apps, right here in this chat. There is nothing to set up: when one of those apps has something for you, it appears here.",
    "Tip: in a team channel, @mention me and a colleague with a message, and I'll pass it on to them privately.",
  ]);
}

export function teamWelcome(teamName: string | undefined): Partial<Activity> {
  return card(
    teamName ? `Herald is now part of ${teamName} 👋` : "Herald is now part of this team 👋",
    [
      "I deliver notifications from your organisation's business apps to members of this team, each in their personal chat with me.",
      "To pass a message on privately, @mention me and one or more colleagues with your message, for example: @Herald @Alex the build is green.",
    ],
  );
}

/** The answer to anything said to Herald in its 1:1 chat. */
export function personalHelp(): Partial<Activity> {
  return {
    type: "message",
    textFormat: "markdown",
    text: "I'm Herald: I deliver notifications from your organisation's business apps here. I don't take commands in this chat. In a team channel, @mention me and colleagues with a message and I'll pass it on to them privately.",
  };
}
