import type { HttpResponseInit } from "@azure/functions";

import type { NotificationStatus } from "../../shared/notifications/status";
import { WORK_KINDS } from "../../shared/notifications/work-items";
import {
  type OutgoingMessage,
  type QueuePort,
  WORK_KIND_PROPERTY,
} from "../../shared/queue/queue-port";
import type { SimUser } from "../simulator";
import { dispatches, type MemoryQueue, ofKind } from "../support/memory-queue";
import { notificationsApiCalls } from "./notifications-api-calls";
import { NotificationsHarness } from "./notifications-harness";

/**
 * The queue port with a fault: the next send of a work kind fails as a process that died at
 * that moment would, with nothing of it on the queue. Everything else reaches the broker.
 */
class FaultyQueue implements QueuePort {
  private readonly faults: string[] = [];

  constructor(private readonly broker: MemoryQueue) {}

  /** The next send of a message of this kind is lost. */
  failNext(kind: string): void {
    this.faults.push(kind);
  }

  enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    for (const message of messages) this.fault(message);
    return this.broker.enqueue(messages);
  }

  schedule(message: OutgoingMessage, at: Date): Promise<void> {
    this.fault(message);
    return this.broker.schedule(message, at);
  }

  private fault(message: OutgoingMessage): void {
    const kind = message.applicationProperties?.[WORK_KIND_PROPERTY];
    const at = this.faults.findIndex((k) => k === kind);
    if (at === -1) return;
    this.faults.splice(at, 1);
    throw new Error(`the process died before its ${String(kind)} reached the queue`);
  }
}

/**
 * `POST /api/notifications` writes the request's row, then queues its dispatch: two services, no
 * transaction. A 500 between them must not leave a request stored and never sent (its sender
 * may never ask again): the intake check, scheduled before the row, sends the dispatch again,
 * and the broker's duplicate detection (on, as on Herald's queues) drops it when it was sent.
 */
describe("a request answered 500 is never left half-done", () => {
  let h: NotificationsHarness;
  let faulty: FaultyQueue;
  let api: ReturnType<typeof notificationsApiCalls>;

  beforeAll(async () => {
    h = await NotificationsHarness.start(
      {},
      {},
      {
        duplicateDetectionWindowMs: 600_000,
        wrapQueue: (queue) => (faulty = new FaultyQueue(queue)),
      },
    );
    api = notificationsApiCalls(() => h.services);
  });
  afterAll(() => h.close());

  /** As the Functions host answers: a handler that throws is a 500. */
  async function post(body: unknown): Promise<HttpResponseInit> {
    try {
      return await api.post(body);
    } catch {
      return { status: 500 };
    }
  }

  async function knownUser(): Promise<SimUser> {
    const user = h.sim.addUser();
    await h.seedUser(user, h.sim.personalConversationId(user));
    return user;
  }

  const statusOf = async (id: string) => (await api.get(id)).jsonBody as NotificationStatus;

  it("delivers a request whose dispatch never reached the queue (500), once, when its intake check runs", async () => {
    const user = await knownUser();
    const body = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    faulty.failNext(WORK_KINDS.dispatch);

    expect((await post(body)).status).toBe(500);
    // Stored, and nothing on the queue for it but the check, 30 s out.
    expect(await h.requests.get(h.key(body.id))).toMatchObject({ state: "received" });
    expect(dispatches(h.queue.waiting)).toEqual([]);
    expect(await statusOf(body.id)).toMatchObject({ state: "queued", final: false });

    await h.drain();

    expect(h.sim.messagesToUser(user).map((m) => m.text)).toEqual(["Your order **42** shipped"]);
    expect(await statusOf(body.id)).toMatchObject({
      state: "completed",
      counts: { total: 1, sent: 1 },
    });
  });

  it("stores nothing, and sends nothing, when the intake check itself could not be queued (500)", async () => {
    const user = await knownUser();
    const body = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    faulty.failNext(WORK_KINDS.intakeCheck);

    expect((await post(body)).status).toBe(500);
    await h.drain();

    expect(await h.requests.get(h.key(body.id))).toBeUndefined();
    expect((await api.get(body.id)).status).toBe(404);
    expect(h.sim.messagesToUser(user)).toEqual([]);
  });

  it("sends one copy when the sender retries the 500 before the check runs", async () => {
    const user = await knownUser();
    const body = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    faulty.failNext(WORK_KINDS.dispatch);

    expect((await post(body)).status).toBe(500);
    expect((await post(body)).status).toBe(202);
    await h.drain();

    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    expect(await statusOf(body.id)).toMatchObject({ state: "completed", counts: { sent: 1 } });
  });

  it("costs a request that went through one dropped copy of its dispatch, and nothing sent twice", async () => {
    const user = await knownUser();
    const body = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    const duplicatesBefore = h.queue.duplicates.length;

    expect((await post(body)).status).toBe(202);
    await h.drain();

    expect(h.sim.messagesToUser(user)).toHaveLength(1);
    expect(
      dispatches(h.queue.duplicates.slice(duplicatesBefore)).map((m) => m.applicationProperties),
    ).toEqual([{ [WORK_KIND_PROPERTY]: WORK_KINDS.dispatch, requestId: body.id }]);
  });

  it("ends a request failed, not pending for good, when its dispatch failed and its check was dead-lettered", async () => {
    const user = await knownUser();
    const body = h.request({ recipients: [{ aadObjectId: user.aadObjectId }] });
    faulty.failNext(WORK_KINDS.dispatch);
    expect((await post(body)).status).toBe(500);
    const [check] = ofKind(h.queue.takeAll(), WORK_KINDS.intakeCheck);

    // The broker gave up on the check (the queue refused its sends every time).
    await h.deliverDeadLetter("work", {
      body: check!.body,
      messageId: check!.messageId!,
      deliveryCount: 6,
      applicationProperties: {
        ...check!.applicationProperties,
        deadLetterReason: "MaxDeliveryCountExceeded",
      },
    });

    expect(await statusOf(body.id)).toMatchObject({
      state: "failed",
      final: true,
      counts: { total: 1, failed: 1 },
    });
    expect(h.sim.messagesToUser(user)).toEqual([]);
  });
});
