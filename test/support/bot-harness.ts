import { randomUUID } from "node:crypto";

import { HttpRequest, type HttpResponseInit, InvocationContext } from "@azure/functions";

import { createMessagesHandler } from "../../functions/messages";
import { type BotServices, createBotServices } from "../../shared/bot/create-bot-services";
import type { Config } from "../../shared/config";
import { memoryLogger } from "../../shared/logging";
import { MemoryQueue } from "../../shared/queue/memory-queue";
import { TableFactory, type TableName } from "../../shared/store/table-factory";
import { startTeamsSimulator, type TeamsSimulator } from "../simulator";
import { testConfig } from "./test-config";

export interface Posted {
  status: number;
  body: unknown;
  /** What the handler logged through the InvocationContext. */
  logs: string[];
}

export interface BotHarness {
  sim: TeamsSimulator;
  config: Config;
  tables: TableFactory;
  queue: MemoryQueue;
  services: BotServices;
  startupLog: ReturnType<typeof memoryLogger>;
  /** Test clock the bot's stores and welcome ledger read; move it with `advance`. */
  advance(ms: number): void;
  /** The test clock's time. */
  now(): Date;
  /** Calls the exported Functions handler as the host would, with this activity as body. */
  post(
    activity: unknown,
    init?: { headers?: Record<string, string>; method?: string; raw?: string },
  ): Promise<Posted>;
  /** Every entity in one of Herald's tables (for "nothing was written" checks). */
  rows(table: TableName): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export interface BotHarnessOptions {
  settings?: Record<string, string>;
  rosterPageSize?: number;
  openIdMetadataUrl?: string;
}

/**
 * Herald's real bot endpoint (functions/messages.ts handler, botbuilder, Azurite) wired to a
 * fresh Teams connector simulator and an in-memory queue.
 */
export async function startBotHarness(options: BotHarnessOptions = {}): Promise<BotHarness> {
  const sim = await startTeamsSimulator();
  const config = testConfig(options.settings ?? {});
  const tables = new TableFactory(config);
  const queue = new MemoryQueue();
  const startupLog = memoryLogger();
  let offset = 0;
  const clock = (): Date => new Date(Date.now() + offset);
  const services = createBotServices(config, startupLog, queue, {
    tables,
    clock,
    ...(options.rosterPageSize !== undefined ? { rosterPageSize: options.rosterPageSize } : {}),
    ...(options.openIdMetadataUrl !== undefined
      ? { openIdMetadataUrl: options.openIdMetadataUrl }
      : {}),
  });
  const handler = createMessagesHandler(() => services);

  return {
    sim,
    config,
    tables,
    queue,
    services,
    startupLog,
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
      const response = (await handler(request, context)) as HttpResponseInit;
      return { status: response.status ?? 200, body: response.jsonBody ?? response.body, logs };
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
