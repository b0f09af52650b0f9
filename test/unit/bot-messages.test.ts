import { stripMentions } from "../../shared/bot/mention-relay";
import { personalWelcome, teamWelcome } from "../../shared/bot/welcome-messages";

describe("stripMentions", () => {
  it("removes the mention markup and keeps the message", () => {
    const text = "<at>Herald</at> <at>Ada Lovelace</at>&nbsp;the build is   green";
    expect(
      stripMentions(text, [{ text: "<at>Herald</at>" }, { text: "<at>Ada Lovelace</at>" }]),
    ).toBe("the build is green");
  });

  it("removes mention tags even without entities for them", () => {
    expect(stripMentions("<at>Someone</at> hi", [])).toBe("hi");
  });

  it("answers empty when only mentions were sent", () => {
    expect(stripMentions("<at>Herald</at> <at>Ada</at>", [{ text: "<at>Herald</at>" }])).toBe("");
  });
});

describe("welcome messages", () => {
  const cardText = (a: ReturnType<typeof personalWelcome>) => JSON.stringify(a.attachments);

  it("greets the user by first name, in an Adaptive Card with a summary", () => {
    const welcome = personalWelcome("Ada Lovelace");
    expect(welcome.summary).toBe("Hi Ada, I'm Herald 👋");
    expect(welcome.attachments?.[0]?.contentType).toBe("application/vnd.microsoft.card.adaptive");
    expect(cardText(welcome)).toContain("notifications");
  });

  it("still greets someone whose name is unknown", () => {
    expect(personalWelcome(undefined).summary).toBe("Hi, I'm Herald 👋");
  });

  it("names the team and explains the @mention relay", () => {
    const welcome = teamWelcome("Operations");
    expect(welcome.summary).toContain("Operations");
    expect(cardText(welcome)).toContain("@mention me");
  });
});
