import { randomUUID } from "node:crypto";

import { HttpRequest, InvocationContext } from "@azure/functions";

import type { BotServices } from "../../shared/bot/create-bot-services";
import { createHeraldServices, type HeraldServices } from "../../shared/composition";
import type { Config } from "../../shared/config";
import { memoryLogger } from "../../shared/logging";
import { TableFactory, type TableName } from "../../shared/store/table-factory";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { MemoryQueue, type RecordedMessage } from "./memory-queue";
import { testConfig } from "./test-config";

export interface Posted {
  status: number;
  body: unknown;
  /** What the handler logged through the InvocationContext. */
  logs: string[];
  /** Teams calls the simulator received while the endpoint was answering (before the work ran). */
  callsDuringRequest: number;
}

export interface BotHarness {
  sim: TeamsSimulator;
  config: Config;
  tables: TableFactory;
  /** The internal work queue. */
  queue: MemoryQueue;
  services: BotServices;
  herald: HeraldServices;
  startupLog: ReturnType<typeof memoryLogger>;
  /** Test clock the bot's stores and welcome ledger read; move it with `advance`. */
  advance(ms: number): void;
  /** The test clock's time. */
  now(): Date;
  /**
   * Calls the endpoint as the Functions host would, with this activity as body, then runs the
   * work items it queued that are due (as the work queue trigger would), unless `drain` is false.
   */
  post(
    activity: unknown,
    init?: { headers?: Record<string, string>; method?: string; raw?: string; drain?: boolean },
  ): Promise<Posted>;
  /** Runs every due work item on the queue (and those they queue), as the work trigger would. */
  drainWork(): Promise<RecordedMessage[]>;
  /** Runs one queued work item as its first delivery. */
  runWork(message: RecordedMessage, deliveryCount?: number): Promise<string[]>;
  /** Every entity in one of Herald's tables (for "nothing was written" checks). */
  rows(table: TableName): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export interface BotHarnessOptions {
  settings?: Record<string, string>;
  rosterPageSize?: number;
  openIdMetadataUrl?: string;
  /**
   * The test clock stands still until `advance` moves it (default: wall time plus what `advance`
   * added). For leases shorter than a loaded machine's pause between two steps of a test.
   */
  manualClock?: boolean;
}

/**
 * Herald's real bot endpoint (functions/messages.ts handler, botbuilder, Azurite) wired to a
 * fresh Teams connector simulator and an in-memory queue.
 */
export async function startBotHarness(options: BotHarnessOptions = {}): Promise<BotHarness> {
  const sim = await startTeamsSimulator();
  const config = testConfig(options.settings ?? {});
  const tables = new TableFactory(config);
  const startupLog = memoryLogger();
  let offset = 0;
  const start = Date.now();
  const clock = options.manualClock
    ? (): Date => new Date(start + offset)
    : (): Date => new Date(Date.now() + offset);
  const queue = new MemoryQueue(clock);
  const herald = createHeraldServices(config, startupLog, {
    queue,
    events: new MemoryQueue(clock),
    tables,
    clock,
    botId: sim.botId,
    ...(options.rosterPageSize !== undefined ? { rosterPageSize: options.rosterPageSize } : {}),
    ...(options.openIdMetadataUrl !== undefined
      ? { openIdMetadataUrl: options.openIdMetadataUrl }
      : {}),
  });
  const services = herald.bot();

  const runWork = async (message: RecordedMessage, deliveryCount = 1): Promise<string[]> => {
    const logs: string[] = [];
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: "work",
      triggerMetadata: {
        messageId: message.messageId ?? randomUUID(),
        deliveryCount,
        sessionId: message.sessionId,
        applicationProperties: message.applicationProperties ?? {},
      },
      logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(" ")}`),
    });
    await herald.work(message.body, context);
    return logs;
  };
  const drainWork = async (): Promise<RecordedMessage[]> => {
    const ran: RecordedMessage[] = [];
    for (let round = 0; round < 20; round++) {
      const now = clock().getTime();
      const due = queue.waiting.filter(
        (m) => m.scheduledFor === undefined || m.scheduledFor.getTime() <= now,
      );
      if (due.length === 0) return ran;
      queue.remove(due);
      // One tenant's work runs in one session; order kept as a session would.
      for (const message of due) {
        ran.push(message);
        await runWork(message);
      }
    }
    throw new Error("work queue still not empty after 20 rounds");
  };

  return {
    sim,
    config,
    tables,
    queue,
    services,
    herald,
    startupLog,
    drainWork,
    runWork,
    advance: (ms) => {
      offset += ms;
    },
    now: clock,
    async post(activity, init = {}) {
      const logs: string[] = [];
      const request = new HttpRequest({
        method: init.method ?? "POST",
        url: "http://127.0.0.1:7071/api/messages",
        headers: { "content-type": "application/json", ...init.headers },
        body: { string: init.raw ?? JSON.stringify(activity) },
      });
      const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: "messages",
        logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(" ")}`),
      });
      const callsBefore = sim.requests.length;
      const response = await herald.messages(request, context);
      const callsDuringRequest = sim.requests.length - callsBefore;
      if (init.drain !== false) await drainWork();
      return {
        status: response.status ?? 200,
        body: response.jsonBody ?? response.body,
        logs,
        callsDuringRequest,
      };
    },
    async rows(table) {
      const client = await tables.table(table);
      const out: Record<string, unknown>[] = [];
      for await (const row of client.listEntities()) out.push(row);
      return out;
    },
    close: () => sim.close(),
  };
}
