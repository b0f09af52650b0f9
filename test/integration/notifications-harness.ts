import { randomUUID } from "node:crypto";

import { InvocationContext } from "@azure/functions";

import type { Config } from "../../shared/config";
import { memoryLogger } from "../../shared/logging";
import { createNotificationsQueueHandler } from "../../shared/notifications/queue-handler";
import {
  createNotificationServices,
  type NotificationServices,
  type NotificationServicesOptions,
} from "../../shared/notifications/services";
import { MemoryQueue, type RecordedMessage } from "../../shared/queue/memory-queue";
import { DeliveryLedger } from "../../shared/store/delivery-ledger";
import { NotificationRequestStore } from "../../shared/store/notification-requests";
import { TableFactory } from "../../shared/store/table-factory";
import { TeamStore } from "../../shared/store/teams";
import { UserReferenceStore } from "../../shared/store/user-references";
import { type SimTeam, type SimUser, startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { testConfig } from "../support/test-config";

/** Real time plus an offset the test moves forward (to the time a retry is scheduled for). */
export class TestClock {
  private offsetMs = 0;
  now = (): Date => new Date(Date.now() + this.offsetMs);
  advanceTo(at: Date): void {
    const ahead = at.getTime() - this.now().getTime();
    if (ahead > 0) this.offsetMs += ahead;
  }
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
}

/**
 * Herald's notification pipeline wired as in Azure, except for the broker: real Azurite
 * tables, the real Teams simulator over HTTP through botbuilder, and an in-memory queue whose
 * messages the test hands to the trigger handler the way the Functions host does.
 */
export class NotificationsHarness {
  readonly logs: LogLine[] = [];
  readonly users: UserReferenceStore;
  readonly teams: TeamStore;
  readonly ledger: DeliveryLedger;
  readonly requests: NotificationRequestStore;
  readonly handler: (message: unknown, context: InvocationContext) => Promise<void>;

  private constructor(
    readonly sim: TeamsSimulator,
    readonly config: Config,
    readonly queue: MemoryQueue,
    readonly tables: TableFactory,
    readonly services: NotificationServices,
    readonly clock: TestClock,
  ) {
    this.users = new UserReferenceStore(tables);
    this.teams = new TeamStore(tables);
    this.ledger = new DeliveryLedger(tables);
    this.requests = new NotificationRequestStore(tables);
    this.handler = createNotificationsQueueHandler(() => services.workHandlers);
  }

  static async start(
    settings: Record<string, string> = {},
    options: NotificationServicesOptions = {},
  ): Promise<NotificationsHarness> {
    const sim = await startTeamsSimulator();
    const config = testConfig(settings);
    const tables = new TableFactory(config);
    const clock = new TestClock();
    const queue = new MemoryQueue(clock.now);
    const services = createNotificationServices(config, memoryLogger(), {
      queue,
      tables,
      botId: sim.botId,
      clock: clock.now,
      pacing: { now: () => clock.now().getTime() },
      ...options,
    });
    return new NotificationsHarness(sim, config, queue, tables, services, clock);
  }

  /** Calls the trigger handler as the Functions host does for one Service Bus message. */
  async deliver(message: TriggerMessage): Promise<void> {
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: "notifications",
      triggerMetadata: {
        messageId: message.messageId ?? randomUUID(),
        deliveryCount: message.deliveryCount ?? 1,
        correlationId: message.correlationId,
        enqueuedTimeUtc: new Date().toISOString(),
        applicationProperties: message.applicationProperties ?? {},
      },
      logHandler: (level, ...args) => this.logs.push({ level, text: args.map(String).join(" ") }),
    });
    await this.handler(message.body, context);
  }

  /** Hands a queued message to the handler as its first delivery. */
  deliverQueued(message: RecordedMessage): Promise<void> {
    return this.deliver({
      body: message.body,
      ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
      ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
      ...(message.applicationProperties !== undefined
        ? { applicationProperties: message.applicationProperties }
        : {}),
    });
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
