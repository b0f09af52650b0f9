import { mentionsOf, parseActivity } from "../../shared/bot/activity-schema";

const TENANT = "9B1A6C2E-7D3F-4A5B-8C9D-0E1F2A3B4C5D";

function activity(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "message",
    id: "1",
    channelId: "msteams",
    serviceUrl: "https://smba.trafficmanager.net/emea/",
    from: { id: "29:ada", name: "Ada", aadObjectId: "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9" },
    recipient: { id: "28:bot", name: "Herald" },
    conversation: { id: "a:1", conversationType: "personal", tenantId: TENANT },
    channelData: { tenant: { id: TENANT } },
    ...overrides,
  };
}

describe("parseActivity", () => {
  it("accepts a personal message and lower-cases the tenant id", () => {
    const parsed = parseActivity(activity());
    expect(parsed).toMatchObject({
      ok: true,
      value: { scope: "personal", tenantId: TENANT.toLowerCase() },
    });
  });

  it("takes the tenant from the conversation when channelData has none", () => {
    const parsed = parseActivity(activity({ channelData: null }));
    expect(parsed).toMatchObject({ ok: true, value: { tenantId: TENANT.toLowerCase() } });
  });

  it("tells a team channel from a group chat", () => {
    const team = parseActivity(
      activity({
        conversation: { id: "19:x@thread.tacv2", conversationType: "channel", isGroup: true },
        channelData: { tenant: { id: TENANT }, team: { id: "19:x@thread.tacv2", name: "Ops" } },
      }),
    );
    const group = parseActivity(
      activity({
        conversation: { id: "19:g@thread.v2", conversationType: "groupChat", isGroup: true },
      }),
    );
    expect(team).toMatchObject({ ok: true, value: { scope: "team", teamId: "19:x@thread.tacv2" } });
    expect(group).toMatchObject({ ok: true, value: { scope: "groupChat", teamId: undefined } });
  });

  it("treats a non-group chat without a conversation type (emulators) as personal", () => {
    const parsed = parseActivity(activity({ conversation: { id: "a:1", tenantId: TENANT } }));
    expect(parsed).toMatchObject({ ok: true, value: { scope: "personal" } });
  });

  it("accepts null where Teams sends null", () => {
    const parsed = parseActivity(
      activity({
        from: { id: "29:ada", name: null, aadObjectId: null },
        text: null,
        entities: null,
      }),
    );
    expect(parsed.ok).toBe(true);
  });

  it("names every bad field", () => {
    const parsed = parseActivity(
      activity({ from: { id: 3 }, recipient: undefined, serviceUrl: "ftp:x" }),
    );
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.issues.map((i) => i.path).sort()).toEqual(["from.id", "recipient", "serviceUrl"]);
  });

  it("requires a tenant", () => {
    const parsed = parseActivity(
      activity({ channelData: {}, conversation: { id: "a:1", conversationType: "personal" } }),
    );
    expect(parsed).toEqual({
      ok: false,
      issues: [{ path: "channelData.tenant.id", message: "required (the Teams tenant)" }],
    });
  });
});

describe("mentionsOf", () => {
  it("lists well-formed mentions and skips other entities", () => {
    const parsed = parseActivity(
      activity({
        entities: [
          { type: "mention", text: "<at>Herald</at>", mentioned: { id: "28:bot", name: "Herald" } },
          { type: "clientInfo", locale: "en-US" },
          { type: "mention", text: "<at>Ada</at>", mentioned: { id: "29:ada", name: "Ada" } },
        ],
      }),
    );
    if (!parsed.ok) throw new Error("expected a valid activity");
    expect(mentionsOf(parsed.value).map((m) => m.id)).toEqual(["28:bot", "29:ada"]);
  });
});
