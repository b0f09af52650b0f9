import { HttpRequest, type HttpResponseInit, InvocationContext } from "@azure/functions";
import fc from "fast-check";

import { createNotificationsApi } from "../../shared/notifications/http-api";
import type { NotificationStatus } from "../../shared/notifications/status";
import { type BotHarness, startBotHarness } from "../support/bot-harness";
import { NotificationsHarness } from "./notifications-harness";

/**
 * Issue 11's classes of hostile but possible input, generated, against the real handlers:
 * `POST /api/messages`, `POST /api/notifications` and the queue trigger. Each property
 * asserts: no 5xx, no throw out of a handler, every refusal recorded with its reason, every
 * accepted request final, and valid recipients of a partly bad request delivered.
 */

const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
/** Ill-formed or unusual text: lone surrogates, astral characters, control characters. */
const hostileText = (maxLength: number) =>
  fc.oneof(
    fc.string({ unit: codeUnit, minLength: 1, maxLength }),
    fc.string({ unit: "binary", minLength: 1, maxLength }),
    fc.constantFrom("\uD800", "a\uDC00b", "\uD83D", "\u0000", "~41", "%41"),
  );
/** Around the encoded key limit: 255 ASCII characters, and multi-byte ones nine-fold. */
const nearKeyLimit = fc.oneof(
  fc.integer({ min: 200, max: 600 }).map((n) => "a".repeat(n)),
  fc.integer({ min: 20, max: 200 }).map((n) => "😀".repeat(n)),
  fc.integer({ min: 20, max: 300 }).map((n) => "é".repeat(n)),
);
/** The JSON text of `nested(depth)`, built without recursion (JSON.stringify would overflow). */
function nestedJson(depth: number): string {
  return `${'{"type":"Container","items":['.repeat(depth)}{"type":"TextBlock","text":"deep"}${"]}".repeat(depth)}`;
}
/** JSON text of `value` with the string "__DEEP__" replaced by `nestedJson(depth)`. */
function withDeep(value: unknown, depth: number | undefined): string {
  const text = JSON.stringify(value);
  return depth === undefined ? text : text.replace('"__DEEP__"', nestedJson(depth));
}
const quiet = () => new InvocationContext({ logHandler: () => {} });

describe("hostile input end to end (Azurite, Teams simulator)", () => {
  describe("POST /api/notifications and the queue trigger", () => {
    let h: NotificationsHarness;
    let api: ReturnType<typeof createNotificationsApi>;

    beforeAll(async () => {
      h = await NotificationsHarness.start({ MaxDeliveryAttempts: "2" });
      api = createNotificationsApi(() => h.services);
    });
    afterAll(() => h.close());

    async function post(body: unknown, depth?: number): Promise<HttpResponseInit> {
      return api.enqueue(
        new HttpRequest({
          method: "POST",
          url: "https://herald.example/api/notifications",
          headers: { "content-type": "application/json" },
          body: { string: withDeep(body, depth) },
        }),
        quiet(),
      );
    }

    const hostileRecipient = fc.oneof(
      hostileText(300).map((v) => ({ userPrincipalName: `${v}@contoso.com` })),
      nearKeyLimit.map((v) => ({ userPrincipalName: `${v}@contoso.com` })),
      fc.oneof(hostileText(300), nearKeyLimit).map((v) => ({ teamsUserId: `29:${v}` })),
    );
    const hostileMessage = fc.oneof(
      hostileText(200).map((text) => ({ text })),
      fc.integer({ min: 60, max: 5_000 }).map((d) => ({
        adaptiveCard: { type: "AdaptiveCard", version: "1.5", body: ["__DEEP__"] },
        depth: d,
      })),
      fc.constantFrom("1.6", "1.10", "2.0").map((version) => ({
        adaptiveCard: { type: "AdaptiveCard", version, body: [] },
      })),
      fc.integer({ min: 79_000, max: 120_000 }).map((n) => ({ text: "x".repeat(n) })),
    );

    it("answers every hostile POST with 202 or 400 (never 5xx), bounded, and records what it accepts", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(hostileRecipient, { minLength: 1, maxLength: 3 }),
          fc.option(hostileMessage, { nil: undefined }),
          fc.option(nearKeyLimit, { nil: undefined }),
          async (recipients, generated, badKey) => {
            const { depth, ...message } = (generated ?? {}) as { depth?: number };
            const body = h.request({
              recipients,
              ...(generated !== undefined ? { message } : {}),
              ...(badKey !== undefined ? { [badKey]: true } : {}),
            });
            const response = await post(body, depth);
            expect([202, 400]).toContain(response.status);
            expect(JSON.stringify(response.jsonBody ?? "").length).toBeLessThan(40_000);
          },
        ),
        { numRuns: 40 },
      );
      h.queue.takeAll();
    });

    it("records every hostile queue message as rejected with its reason or delivers it to a final state, never throwing", async () => {
      const good = h.sim.addUser();
      await h.seedUser(good);
      await fc.assert(
        fc.asyncProperty(
          fc.array(hostileRecipient, { minLength: 1, maxLength: 3 }),
          fc.option(hostileMessage, { nil: undefined }),
          async (recipients, generated) => {
            const { depth, ...message } = (generated ?? {}) as { depth?: number };
            const body = JSON.parse(
              withDeep(
                h.request({
                  recipients: [...recipients, { aadObjectId: good.aadObjectId }],
                  ...(generated !== undefined ? { message } : {}),
                }),
                depth,
              ),
            ) as { id: string };
            await h.deliver({ body, messageId: body.id });
            await h.drain();
            const status = (await h.services.status.get(body.id)) as NotificationStatus;
            expect(status).toBeDefined();
            if (status.state === "rejected") {
              expect(status.errors?.length ?? 0).toBeGreaterThan(0);
              for (const e of status.errors ?? []) expect(e.message.length).toBeGreaterThan(0);
            } else {
              expect(status.state).toBe("completed");
              const goodRow = status.recipients.find(
                (r) => r.recipient.aadObjectId === good.aadObjectId,
              );
              expect(goodRow?.state).toBe("sent");
            }
          },
        ),
        { numRuns: 25 },
      );
    });

    it("delivers every recipient of a request naming users by long, non-ASCII UPNs, and logs none of them", async () => {
      const users = [h.sim.addUser(), h.sim.addUser()];
      const upns = [`${"é".repeat(120)}@contoso.com`, `${"a".repeat(220)}@contoso.com`];
      for (const [i, user] of users.entries())
        await h.users.upsert({
          tenantId: h.sim.tenantId,
          teamsUserId: user.id,
          userPrincipalName: upns[i],
          serviceUrl: h.sim.serviceUrl,
          learnedFrom: "personal",
        });
      const body = h.request({ recipients: upns.map((u) => ({ userPrincipalName: u })) });
      h.logs.length = 0;
      await h.deliver({ body, messageId: body.id });
      await h.drain();
      const status = (await h.services.status.get(body.id)) as NotificationStatus;
      expect(status.recipients.map((r) => r.state)).toEqual(["sent", "sent"]);
      const text = h.logs.map((l) => l.text).join("\n");
      for (const upn of upns) expect(text).not.toContain(upn);
      expect(text).not.toMatch(/userPrincipalName:[^#"]/);
    });
  });

  describe("POST /api/messages", () => {
    let bot: BotHarness;

    beforeAll(async () => {
      bot = await startBotHarness();
    });
    afterAll(() => bot.close());

    it("answers hostile ids, names and nesting with 2xx or 4xx, never 5xx", async () => {
      const user = bot.sim.addUser();
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(hostileText(300), nearKeyLimit),
          fc.oneof(
            hostileText(100),
            fc.integer({ min: 1_000, max: 100_000 }).map((n) => "名".repeat(n)),
          ),
          fc.option(fc.integer({ min: 65, max: 20_000 }), { nil: undefined }),
          async (fromId, name, depth) => {
            const activity = bot.sim.activities.message(user, "hello") as unknown as Record<
              string,
              unknown
            >;
            const from = {
              ...(activity.from as Record<string, unknown>),
              id: `29:${fromId}`,
              name,
            };
            const raw = withDeep(
              { ...activity, from, ...(depth !== undefined ? { value: "__DEEP__" } : {}) },
              depth,
            );
            const posted = await bot.post(undefined, { raw });
            expect(posted.status).toBeLessThan(500);
            expect(JSON.stringify(posted.body ?? "").length).toBeLessThan(20_000);
          },
        ),
        { numRuns: 30 },
      );
    });
  });
});
