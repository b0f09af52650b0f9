import type { SimUser } from "../simulator";
import { NotificationsHarness } from "./notifications-harness";

/**
 * A row's events are one Table string property (about 32,000 characters). A row whose events
 * grow without bound (one `rejected` per refused copy of a request) reaches that size; what
 * happens then must never cost a delivery.
 */
describe("a row's events at the size of one Table property", () => {
  let h: NotificationsHarness;

  beforeAll(async () => {
    h = await NotificationsHarness.start();
  });
  afterAll(() => h.close());

  async function seeded(): Promise<SimUser> {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    return user;
  }

  it("delivers a fixed request though its id was refused so often that its rejections fill the row", async () => {
    const user = await seeded();
    const valid = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    // A LOB app that resends one broken request in a loop: each copy is a new queue message.
    const broken = { ...valid, message: { text: "", format: "markdown" } };
    for (let copy = 0; copy < 120; copy++)
      await h.deliver({ body: broken, messageId: `${valid.id}-copy-${copy}` });
    expect(await h.services.status.get(valid.id)).toMatchObject({ state: "rejected" });
    const page = await h.services.eventLog.read(h.key(valid.id));
    const rejections = page.kind === "found" ? page.page.events : [];
    expect(rejections.length).toBeGreaterThan(10);
    expect(rejections.every((e) => e.type === "herald.notification.rejected")).toBe(true);

    await h.deliver({ body: valid, messageId: `${valid.id}-fixed` });
    await h.drain();

    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    expect(await h.services.status.get(valid.id)).toMatchObject({
      state: "completed",
      final: true,
    });
    const after = await h.services.eventLog.read(h.key(valid.id));
    const types = after.kind === "found" ? after.page.events.map((e) => e.type) : [];
    expect(types.slice(rejections.length)).toEqual([
      "herald.notification.accepted",
      "herald.delivery.sent",
      "herald.notification.completed",
    ]);
  });

  it("records and publishes the rejection of a request with thousands of invalid recipients, naming the first errors and how many more", async () => {
    const request = h.request({
      recipients: Array.from({ length: 3_000 }, (_, i) => ({ upn: `not an address ${i}` })),
    });
    await h.deliver({ body: request, messageId: request.id });

    expect(await h.services.status.get(request.id)).toMatchObject({ state: "rejected" });
    const page = await h.services.eventLog.read(h.key(request.id));
    const [rejected] = page.kind === "found" ? page.page.events : [];
    expect(rejected?.type).toBe("herald.notification.rejected");
    const errors = (rejected?.data as { errors: { path: string; message: string }[] }).errors;
    expect(errors.at(-1)?.message).toMatch(/^and \d+ more errors$/);
    const published = h.topic.takeAll().map((m) => (m.body as { id: string }).id);
    expect(published).toContain(rejected?.id);
  });
});
