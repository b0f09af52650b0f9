import { printStatus } from "../../shared/cli/status-command";
import { CARD_REFERENCE_KEY } from "../../shared/model/card-actions";
import { parseNotificationRequest } from "../../shared/notifications/schema";
import type { SimUser } from "../simulator";
import { NotificationChanges } from "./notification-changes";
import { NotificationsHarness } from "./notifications-harness";

const approvalCard = {
  type: "AdaptiveCard",
  version: "1.5",
  body: [
    { type: "TextBlock", text: "Order 4711 needs your approval" },
    { type: "Input.Text", id: "comment", label: "Comment" },
  ],
  actions: [
    { type: "Action.Execute", title: "Approve", verb: "approve", data: { orderId: 4711 } },
    { type: "Action.Execute", title: "Reject", verb: "reject", data: { orderId: 4711 } },
  ],
};

const approvedCard = {
  type: "AdaptiveCard",
  version: "1.5",
  body: [{ type: "TextBlock", text: "Approved" }],
};

const submitCard = {
  type: "AdaptiveCard",
  version: "1.4",
  body: [{ type: "Input.Text", id: "answer", label: "Your answer" }],
  actions: [{ type: "Action.Submit", title: "Send", data: { question: 7 } }],
};

type Data = Record<string, unknown>;

/** The Adaptive Card of a chat message's attachments. */
const cardOf = (attachments: readonly unknown[] | undefined) =>
  (attachments?.[0] as { content?: { body?: unknown[]; actions?: unknown[] } } | undefined)
    ?.content;

describe("card actions (bot endpoint, Azurite, Teams simulator)", () => {
  let h: NotificationsHarness;

  beforeAll(async () => {
    h = await NotificationsHarness.start({ NotificationEvents: "true" });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.sim.reset();
    h.queue.takeAll();
    h.topic.takeAll();
  });

  /** Sends `card` to a new user; the user and the data of each button as Teams shows it. */
  async function sent(card: unknown, extra: Data = {}) {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    const request = h.request({
      recipients: [{ teamsUserId: user.id }],
      message: { adaptiveCard: card },
      ...extra,
    });
    await h.deliver({ body: request, messageId: request.id });
    const [message] = h.sim.messagesToUser(user);
    const content = (
      message?.activity.attachments as { content: { actions: { data: Data }[] } }[]
    )[0]?.content;
    const buttons = (content?.actions ?? []).map((a) => a.data);
    return { user, request, message: message!, buttons };
  }

  const rowOf = (requestId: string, user: SimUser) =>
    h.ledger.get(h.key(requestId), `teamsUserId:${user.id}`);
  const actionEvents = () =>
    h.topic.takeAll().filter((m) => (m.body as { type: string }).type === "herald.card.action");

  describe("at send", () => {
    it("adds Herald's reference to each button's data and keeps the LOB's fields", async () => {
      const { buttons } = await sent(approvalCard);

      expect(buttons).toHaveLength(2);
      for (const data of buttons) {
        expect(data.orderId).toBe(4711);
        expect(data[CARD_REFERENCE_KEY]).toMatchObject({ t: h.sim.tenantId.toLowerCase(), v: 1 });
      }
    });

    it("refuses a card with Action.Execute below version 1.5 at intake, naming the action", () => {
      const parsed = parseNotificationRequest(
        h.request({
          recipients: [{ teamsUserId: "29:someone" }],
          message: { adaptiveCard: { ...approvalCard, version: "1.4" } },
        }),
      );

      expect(parsed.ok).toBe(false);
      expect(parsed.ok ? [] : parsed.errors).toContainEqual({
        path: "message.adaptiveCard.actions.0",
        message: expect.stringContaining(
          "Action.Execute needs an Adaptive Card of version 1.5",
        ) as unknown,
      });
    });
  });

  describe("Action.Execute", () => {
    it("answers approve with the request's approve card, and records one action and one event when the invoke arrives three times", async () => {
      const { user, request, message, buttons } = await sent(approvalCard, {
        actions: { approve: { card: approvedCard }, reject: { text: "Rejected" } },
      });
      const click = h.sim.activities.executeClick(
        user,
        { verb: "approve", data: { ...buttons[0], comment: "fine" } },
        message.id,
      );

      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await h.postActivityAnswer(click));

      for (const answer of answers)
        expect(answer).toMatchObject({
          status: 200,
          body: {
            statusCode: 200,
            type: "application/vnd.microsoft.card.adaptive",
            value: { body: approvedCard.body },
          },
        });
      const row = await rowOf(request.id, user);
      expect(row?.actions?.map((a) => a.verb)).toEqual(["approve"]);
      const status = await h.services.status.get(request.id, { tenantId: h.sim.tenantId });
      expect(status?.recipients[0]?.actions?.map((a) => a.verb)).toEqual(["approve"]);
      let printed = "";
      printStatus(status!, {
        stdout: { write: (chunk: string) => (printed += chunk) },
        stderr: { write: () => true },
      });
      expect(printed).toMatch(/sent .* clicked approve 20\d\d-/);
      const events = actionEvents();
      expect(new Set(events.map((e) => e.messageId)).size).toBe(1);
      expect(events[0]?.body).toMatchObject({
        type: "herald.card.action",
        data: {
          verb: "approve",
          actionType: "Action.Execute",
          inputs: { orderId: 4711, comment: "fine" },
          teamsUserId: user.id,
        },
      });
      expect(JSON.stringify(events[0]?.body)).not.toContain(CARD_REFERENCE_KEY);
      expect(h.sim.messagesToUser(user)).toHaveLength(1);
    });

    it("replaces the clicked copy in the chat once with the approve card, without buttons, when the invoke arrives three times", async () => {
      const { user, message, buttons } = await sent(approvalCard, {
        actions: { approve: { card: approvedCard } },
      });
      const click = h.sim.activities.executeClick(user, { verb: "approve", data: buttons[0] });
      for (let i = 0; i < 3; i++) await h.postActivityAnswer(click);

      await h.drain();

      const chat = h.sim.chatOf(user);
      expect(chat).toHaveLength(1);
      expect(chat[0]).toMatchObject({ id: message.id, edited: true });
      expect(cardOf(chat[0]!.attachments)).toMatchObject({ body: approvedCard.body });
      expect(JSON.stringify(chat[0]!.attachments)).not.toContain("Action.Execute");
      expect(h.sim.messagesToUser(user)[0]?.previousVersions).toHaveLength(1);
    });

    it("replaces a copy answered with a text by its card without buttons and the text", async () => {
      const { user, buttons } = await sent(approvalCard, {
        actions: { reject: { text: "Rejected: order 4711 is cancelled." } },
      });
      await h.postActivityAnswer(
        h.sim.activities.executeClick(user, { verb: "reject", data: buttons[1] }),
      );

      await h.drain();

      const card = cardOf(h.sim.chatOf(user)[0]?.attachments);
      expect(card?.actions).toEqual([]);
      expect(JSON.stringify(card?.body)).toContain("Order 4711 needs your approval");
      expect(JSON.stringify(card?.body)).toContain("Rejected: order 4711 is cancelled.");
    });

    it("answers a verb without a response with Herald's acknowledgement", async () => {
      const { user, buttons } = await sent(approvalCard);

      const answer = await h.postActivityAnswer(
        h.sim.activities.executeClick(user, { verb: "reject", data: buttons[1] }),
      );

      expect(answer.body).toEqual({
        statusCode: 200,
        type: "application/vnd.microsoft.activity.message",
        value: "Thanks, your response was recorded.",
      });
    });
  });

  describe("after an update of the request (issue 23)", () => {
    it("stamps the updated copy's buttons with the same reference, so its clicks are taken", async () => {
      const { user, request, buttons } = await sent(approvalCard);
      const changed = {
        ...approvalCard,
        body: [{ type: "TextBlock", text: "Order 4711, now 10 laptops" }],
      };
      expect(
        (
          await new NotificationChanges(h).update(request.id, {
            message: { adaptiveCard: changed },
          })
        ).status,
      ).toBe(202);
      await h.drain();

      const updated = h.sim
        .chatOf(user)
        .find((m) => JSON.stringify(m.attachments).includes("10 laptops"));
      const data = (
        updated?.attachments as { content: { actions: { data: Data }[] } }[] | undefined
      )?.[0]?.content.actions[0]?.data;
      expect(data?.[CARD_REFERENCE_KEY]).toMatchObject({
        s: (buttons[0]![CARD_REFERENCE_KEY] as { s: string }).s,
        v: 2,
      });
      const answer = await h.postActivityAnswer(
        h.sim.activities.executeClick(user, { verb: "approve", data }),
      );
      expect(answer.body).toMatchObject({ statusCode: 200 });
    });
  });

  describe("an answered copy and a later update of the request", () => {
    it("keeps the answer: the updated card arrives without its buttons and with the answer text", async () => {
      const { user, request, buttons } = await sent(approvalCard);
      await h.postActivityAnswer(
        h.sim.activities.executeClick(user, { verb: "approve", data: buttons[0] }),
      );
      await h.drain();
      const changed = {
        ...approvalCard,
        body: [{ type: "TextBlock", text: "Order 4711, now 10 laptops" }],
      };
      await new NotificationChanges(h).update(request.id, { message: { adaptiveCard: changed } });

      await h.drain();

      const card = cardOf(h.sim.chatOf(user)[0]?.attachments);
      expect(JSON.stringify(card?.body)).toContain("now 10 laptops");
      expect(JSON.stringify(card?.body)).toContain("Thanks, your response was recorded.");
      expect(card?.actions).toEqual([]);
      expect((await rowOf(request.id, user))?.revision).toBe(2);
    });
  });

  describe("Action.Submit", () => {
    it("records the click without the help text", async () => {
      const { user, request, buttons } = await sent(submitCard);

      const status = await h.postActivity(
        h.sim.activities.submitClick(user, { ...buttons[0], answer: "42" }),
      );

      expect(status).toBe(200);
      expect(h.queue.takeAll("welcome")).toHaveLength(0);
      const row = await rowOf(request.id, user);
      expect(row?.actions).toEqual([
        expect.objectContaining({ verb: "submit", type: "Action.Submit" }),
      ]);
      expect(actionEvents()[0]?.body).toMatchObject({
        data: { inputs: { question: 7, answer: "42" } },
      });
    });

    it("records a Submit sent as an invoke (msteams type invoke) like a Submit message", async () => {
      const { user, request, buttons } = await sent(submitCard);

      const answer = await h.postActivityAnswer(
        h.sim.activities.submitInvokeClick(user, { ...buttons[0], answer: "42" }),
      );

      expect(answer.status).toBe(200);
      expect((await rowOf(request.id, user))?.actions).toEqual([
        expect.objectContaining({ verb: "submit", type: "Action.Submit" }),
      ]);
    });

    it("answers a Submit on a recalled request with a short reply in the chat and records nothing", async () => {
      const { user, request, buttons } = await sent(submitCard);
      expect((await new NotificationChanges(h).recall(request.id)).status).toBe(202);
      await h.drain();

      expect(
        await h.postActivity(h.sim.activities.submitClick(user, { ...buttons[0], answer: "42" })),
      ).toBe(200);
      await h.drain();

      const chat = h.sim.chatOf(user);
      expect(chat.at(-1)?.text).toBe("This notification is no longer available.");
      expect(chat).toHaveLength(2);
      expect((await rowOf(request.id, user))?.actions).toBeUndefined();
      expect(actionEvents()).toHaveLength(0);
    });

    it("replaces the copy with its card without the button and Herald's acknowledgement", async () => {
      const { user, message, buttons } = await sent(submitCard);
      await h.postActivity(h.sim.activities.submitClick(user, { ...buttons[0], answer: "42" }));

      await h.drain();

      const chat = h.sim.chatOf(user);
      expect(chat).toHaveLength(1);
      expect(chat[0]).toMatchObject({ id: message.id, edited: true });
      const card = cardOf(chat[0]!.attachments);
      expect(JSON.stringify(card)).not.toContain("Action.Submit");
      expect(JSON.stringify(card?.body)).toContain("Thanks, your response was recorded.");
    });
  });

  describe("bad or stale clicks get an error answer and record nothing", () => {
    const expectRefused = async (
      user: SimUser,
      requestId: string,
      answer: { status: number; body: unknown },
    ) => {
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({
        statusCode: 400,
        type: "application/vnd.microsoft.error",
        value: { code: "BadRequest" },
      });
      expect((await rowOf(requestId, user))?.actions).toBeUndefined();
      expect(actionEvents()).toHaveLength(0);
    };

    it("refuses a reference altered by one character", async () => {
      const { user, request, buttons } = await sent(approvalCard);
      const reference = buttons[0]![CARD_REFERENCE_KEY] as { s: string };
      const last = reference.s.endsWith("A") ? "B" : "A";
      const altered = { ...reference, s: `${reference.s.slice(0, -1)}${last}` };

      const answer = await h.postActivityAnswer(
        h.sim.activities.executeClick(user, {
          verb: "approve",
          data: { ...buttons[0], [CARD_REFERENCE_KEY]: altered },
        }),
      );

      await expectRefused(user, request.id, answer);
    });

    it("refuses a click by another user", async () => {
      const { user, request, buttons } = await sent(approvalCard);
      const other = h.sim.addUser();

      const answer = await h.postActivityAnswer(
        h.sim.activities.executeClick(other, { verb: "approve", data: buttons[0] }),
      );

      await expectRefused(user, request.id, answer);
    });

    it("refuses a click from another tenant", async () => {
      const { user, request, buttons } = await sent(approvalCard);
      const click = h.sim.activities.executeClick(user, { verb: "approve", data: buttons[0] });
      const otherTenant = "0b5e2d6a-1c1d-4a51-9d3e-7f0c0c0c0c0c";

      const answer = await h.postActivityAnswer({
        ...click,
        conversation: { ...click.conversation, tenantId: otherTenant },
        channelData: { tenant: { id: otherTenant } },
      });

      await expectRefused(user, request.id, answer);
    });

    it("refuses a verb the request does not answer", async () => {
      const { user, request, buttons } = await sent(approvalCard, {
        actions: { approve: { text: "ok" } },
      });

      const answer = await h.postActivityAnswer(
        h.sim.activities.executeClick(user, { verb: "delete", data: buttons[0] }),
      );

      await expectRefused(user, request.id, answer);
    });

    it("refuses a click on a recalled request", async () => {
      const { user, request, buttons } = await sent(approvalCard);
      expect((await new NotificationChanges(h).recall(request.id)).status).toBe(202);

      const answer = await h.postActivityAnswer(
        h.sim.activities.executeClick(user, { verb: "approve", data: buttons[0] }),
      );

      await expectRefused(user, request.id, answer);
    });

    it("refuses a click without Herald's reference", async () => {
      const { user, request } = await sent(approvalCard);

      const answer = await h.postActivityAnswer(
        h.sim.activities.executeClick(user, { verb: "approve", data: { orderId: 4711 } }),
      );

      await expectRefused(user, request.id, answer);
    });
  });
});
