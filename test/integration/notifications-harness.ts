import { randomUUID } from "node:crypto";

import { HttpRequest, InvocationContext } from "@azure/functions";

import {
  createHeraldServices,
  type HeraldServices,
  type HeraldServicesOptions,
} from "../../shared/composition";
import type { Config } from "../../shared/config";
import { memoryLogger } from "../../shared/logging";
import type { NotificationServices } from "../../shared/notifications/services";
import { WORK_KINDS } from "../../shared/notifications/work-items";
import { type QueuePort, WORK_KIND_PROPERTY } from "../../shared/queue/queue-port";
import { DeliveryLedger } from "../../shared/store/delivery-ledger";
import { NotificationRequestStore } from "../../shared/store/notification-requests";
import { TableFactory } from "../../shared/store/table-factory";
import { TeamStore } from "../../shared/store/teams";
import { UserReferenceStore } from "../../shared/store/user-references";
import { type SimTeam, type SimUser, startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { MemoryQueue, type RecordedMessage } from "../support/memory-queue";
import { testConfig } from "../support/test-config";

/** Real time plus an offset the test moves forward (to the time a retry is scheduled for, and through pacing waits). */
export class TestClock {
  private offsetMs = 0;
  private readonly startedAt = Date.now();
  /** `standStill`: only `advanceTo` and `sleep` move it (no lease runs out while a test waits). */
  constructor(private readonly standStill = false) {}
  now = (): Date => new Date((this.standStill ? this.startedAt : Date.now()) + this.offsetMs);
  advanceTo(at: Date): void {
    const ahead = at.getTime() - this.now().getTime();
    if (ahead > 0) this.offsetMs += ahead;
  }
  /**
   * A pacing wait on this clock: it moves the clock instead of the wall clock passing, so a paced
   * test takes no longer on a loaded machine and the pacer sees exactly the wait it granted.
   */
  sleep = async (ms: number): Promise<void> => {
    this.advanceTo(new Date(this.now().getTime() + ms));
    await new Promise<void>((resolve) => setImmediate(resolve));
  };
}

export interface LogLine {
  readonly level: string;
  readonly text: string;
}

export interface TriggerMessage {
  readonly body: unknown;
  readonly messageId?: string;
  readonly deliveryCount?: number;
  readonly applicationProperties?: Readonly<Record<string, unknown>>;
  readonly correlationId?: string;
  readonly sessionId?: string;
}

/**
 * Herald's notification pipeline wired as in Azure, except for the broker: real Azurite
 * tables, the real Teams simulator over HTTP through botbuilder, and an in-memory work queue
 * whose messages the test hands to the work trigger the way the Functions host does.
 * `deliver` is a message on the LOB-facing intake queue; `deliverWork` one on the work queue.
 */
export class NotificationsHarness {
  readonly logs: LogLine[] = [];
  readonly users: UserReferenceStore;
  readonly teams: TeamStore;
  readonly ledger: DeliveryLedger;
  readonly requests: NotificationRequestStore;
  readonly services: NotificationServices;

  private constructor(
    readonly sim: TeamsSimulator,
    readonly config: Config,
    /** The internal work queue. */
    readonly queue: MemoryQueue,
    /** The events topic, in memory (a test that passes `events` gets its own there instead). */
    readonly topic: MemoryQueue,
    readonly tables: TableFactory,
    readonly herald: HeraldServices,
    readonly clock: TestClock,
  ) {
    this.users = new UserReferenceStore(tables);
    this.teams = new TeamStore(tables);
    this.ledger = new DeliveryLedger(tables);
    this.requests = new NotificationRequestStore(tables);
    this.services = herald.notifications;
  }
  /** A request's identity in the simulator's tenant. */
  key(id: string): { tenantId: string; id: string } {
    return { tenantId: this.sim.tenantId, id };
  }

  static async start(
    settings: Record<string, string> = {},
    options: HeraldServicesOptions = {},
    given: {
      /** A Teams simulator started by the test (closed with the harness). */
      sim?: TeamsSimulator;
      /** The broker's duplicate detection window (default 0: off, see below). */
      duplicateDetectionWindowMs?: number;
      /** What Herald sends through in front of the queue (a test's fault in the queue port). */
      wrapQueue?: (queue: MemoryQueue) => QueuePort;
    } = {},
  ): Promise<NotificationsHarness> {
    const sim = given.sim ?? (await startTeamsSimulator());
    const config = testConfig(settings);
    const tables = new TableFactory(config);
    const clock = new TestClock();
    // No duplicate detection by default: these tests take messages off the queue and hand them
    // back themselves (a redelivery), which a broker that still held them would not see as new.
    const queue = new MemoryQueue(clock.now, {
      duplicateDetectionWindowMs: given.duplicateDetectionWindowMs ?? 0,
    });
    const topic = new MemoryQueue(clock.now);
    const services = createHeraldServices(config, memoryLogger(), {
      queue: given.wrapQueue?.(queue) ?? queue,
      events: topic,
      tables,
      botId: sim.botId,
      clock: clock.now,
      pacing: { now: () => clock.now().getTime() },
      sleep: clock.sleep,
      ...options,
    });
    return new NotificationsHarness(sim, config, queue, topic, tables, services, clock);
  }

  /**
   * One message on the intake queue, as the Functions host hands it to the trigger; then the
   * `dispatch` work items it queued that are due, with the same delivery count (what a broker
   * does next: the request's processing, delivered as often as the test says).
   */
  async deliver(message: TriggerMessage): Promise<void> {
    const before = new Set(this.queue.waiting);
    await this.invoke("notifications", this.herald.intake, message);
    const now = this.clock.now().getTime();
    const dispatches = this.queue.waiting.filter(
      (m) =>
        !before.has(m) &&
        m.applicationProperties?.[WORK_KIND_PROPERTY] === WORK_KINDS.dispatch &&
        (m.scheduledFor === undefined || m.scheduledFor.getTime() <= now),
    );
    this.queue.remove(dispatches);
    for (const dispatch of dispatches)
      await this.deliverWork({
        ...this.asTrigger(dispatch),
        ...(message.deliveryCount !== undefined ? { deliveryCount: message.deliveryCount } : {}),
      });
  }

  /** An activity posted to the bot endpoint as Teams posts it (anonymous); the HTTP status. */
  async postActivity(activity: unknown): Promise<number> {
    return (await this.postActivityAnswer(activity)).status;
  }

  /** An activity posted to the bot endpoint; the HTTP status and the JSON body it answered. */
  async postActivityAnswer(activity: unknown): Promise<{ status: number; body: unknown }> {
    const response = await this.herald.messages(
      new HttpRequest({
        method: "POST",
        url: "http://127.0.0.1:7071/api/messages",
        headers: { "content-type": "application/json" },
        body: { string: JSON.stringify(activity) },
      }),
      new InvocationContext({
        invocationId: randomUUID(),
        functionName: "messages",
        logHandler: (level, ...args) => this.logs.push({ level, text: args.map(String).join(" ") }),
      }),
    );
    return { status: response.status ?? 200, body: response.jsonBody ?? response.body };
  }

  /** One message on the intake queue, leaving the dispatch it queues on the work queue. */
  invokeIntakeOnly(message: TriggerMessage): Promise<void> {
    return this.invoke("notifications", this.herald.intake, message);
  }

  /** One message read from a dead-letter subqueue, as the Functions host hands it over. */
  deliverDeadLetter(queue: "intake" | "work", message: TriggerMessage): Promise<void> {
    return this.invoke(`${queue}-dead-letters`, this.herald.deadLetters[queue], message);
  }

  /** One message on the work queue, as the Functions host hands it to the trigger. */
  deliverWork(message: TriggerMessage): Promise<void> {
    return this.invoke("work", this.herald.work, message);
  }

  private async invoke(
    functionName: string,
    handler: (message: unknown, context: InvocationContext) => Promise<void>,
    message: TriggerMessage,
  ): Promise<void> {
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName,
      triggerMetadata: {
        messageId: message.messageId ?? randomUUID(),
        deliveryCount: message.deliveryCount ?? 1,
        correlationId: message.correlationId,
        enqueuedTimeUtc: new Date().toISOString(),
        applicationProperties: message.applicationProperties ?? {},
        ...(message.sessionId !== undefined ? { sessionId: message.sessionId } : {}),
      },
      logHandler: (level, ...args) => this.logs.push({ level, text: args.map(String).join(" ") }),
    });
    await handler(message.body, context);
  }

  private asTrigger(message: RecordedMessage): TriggerMessage {
    return {
      body: message.body,
      ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
      ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
      ...(message.sessionId !== undefined ? { sessionId: message.sessionId } : {}),
      ...(message.applicationProperties !== undefined
        ? { applicationProperties: message.applicationProperties }
        : {}),
    };
  }

  /** Hands a queued work item to the work trigger (as its first delivery, by default). */
  deliverQueued(message: RecordedMessage, deliveryCount = 1): Promise<void> {
    return this.deliverWork({ ...this.asTrigger(message), deliveryCount });
  }

  /**
   * Delivers everything on the queue until it is empty, `concurrency` at a time, moving the
   * clock to each round's latest scheduled time first (a broker would hold them until then);
   * returns every message delivered, in order.
   */
  async drain(concurrency = 8, maxRounds = 20): Promise<RecordedMessage[]> {
    const delivered: RecordedMessage[] = [];
    for (let round = 0; round < maxRounds; round++) {
      const batch = this.queue.takeAll();
      if (batch.length === 0) return delivered;
      for (const message of batch)
        if (message.scheduledFor !== undefined) this.clock.advanceTo(message.scheduledFor);
      let next = 0;
      const worker = async () => {
        while (next < batch.length) {
          const message = batch[next++]!;
          delivered.push(message);
          await this.deliverQueued(message);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, worker));
    }
    throw new Error(`queue still not empty after ${maxRounds} rounds`);
  }

  /** Records the user as the bot endpoint would after a personal install. */
  async seedUser(user: SimUser, conversationId?: string): Promise<void> {
    await this.users.upsert({
      tenantId: this.sim.tenantId,
      teamsUserId: user.id,
      aadObjectId: user.aadObjectId,
      name: user.name,
      userPrincipalName: user.userPrincipalName,
      email: user.email,
      serviceUrl: this.sim.serviceUrl,
      conversationId,
      learnedFrom: "personal",
    });
  }

  /**
   * Records a team and its roster as the bot endpoint's roster sync would: the membership of
   * every member, and user references for `withReferences` (default all members).
   */
  async seedTeam(team: SimTeam, withReferences: readonly SimUser[] = team.members): Promise<void> {
    const tenantId = this.sim.tenantId;
    await this.teams.upsert({
      tenantId,
      teamId: team.id,
      name: team.name,
      serviceUrl: this.sim.serviceUrl,
    });
    await this.users.upsertMany(
      withReferences.map((m) => ({
        tenantId,
        teamsUserId: m.id,
        aadObjectId: m.aadObjectId,
        name: m.name,
        userPrincipalName: m.userPrincipalName,
        serviceUrl: this.sim.serviceUrl,
        learnedFrom: "roster" as const,
      })),
    );
    await this.teams.addMembers(
      tenantId,
      team.id,
      team.members.map((m) => m.id),
    );
  }

  /** A valid request body to one or more recipients. */
  request(overrides: Record<string, unknown> = {}): Record<string, unknown> & { id: string } {
    return {
      schemaVersion: 1,
      id: `req-${randomUUID()}`,
      tenantId: this.sim.tenantId,
      recipients: [],
      message: { text: "Your order **42** shipped", format: "markdown" },
      correlationId: `corr-${randomUUID().slice(0, 8)}`,
      ...overrides,
    };
  }

  async close(): Promise<void> {
    await this.sim.close();
  }
}
