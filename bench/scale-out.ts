import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { loadConfig } from "../shared/config";
import { namesDistinctPeople } from "../shared/model/recipient";
import { recipientKey } from "../shared/notifications/recipients";
import type { Recipient } from "../shared/notifications/schema";
import { deliveryMessage, deliveryWork, sessionOf } from "../shared/notifications/work-items";
import { LocalQueue } from "../shared/queue/local-queue";
import { DeliveryLedger, type WrittenRow } from "../shared/store/delivery-ledger";
import { NotificationRequestStore, type RequestKey } from "../shared/store/notification-requests";
import { TableFactory } from "../shared/store/table-factory";
import { GLOBAL_PER_BOT_PER_TENANT_LIMIT } from "../shared/teams-limits";
import { type SimUser, startTeamsSimulator, type TeamsSimulator } from "../test/simulator";
import { ROUTE_NAMES, type RouteName } from "../test/simulator/types";
import { startProcessorWorker } from "./fork";
import { freshTables, seedUsers } from "./infra";
import type { LoopDelay, ProcessorResult, TablesTarget } from "./jobs";
import { LoopDelaySampler, round, sleep } from "./stats";

/** One row of `scaleOut` in bench/results.json: the shape issue 9 asks for. */
export interface ScaleOutRow {
  readonly instances: number;
  readonly tenants: number;
  readonly usersPerTenant: number;
  readonly latencyMs: number;
  /** 50 calls/s per tenant × tenants. */
  readonly allowedPerSecond: number;
  /** Recipients recorded `sent` / seconds from the first to the last accepted send. */
  readonly deliveredPerSecond: number;
  /** Most calls that reached the simulator for one tenant in any sliding 1 s window. */
  readonly maxCallsInAnySecondPerTenant: number;
  /** 429 answers / calls to Teams. */
  readonly share429: number;
  /** Recipients whose ledger row did not end `sent`. */
  readonly lost: number;
}

/** The session settings each instance drains with (host.json's, see `hostSessionSettings`). */
export interface SessionSettings {
  readonly maxConcurrentSessions: number;
  readonly maxConcurrentCallsPerSession: number;
  readonly sessionIdleTimeoutMs: number;
  /** The local broker's longest wait between looks for sessions to take. */
  readonly pollIntervalMs: number;
  readonly lockDurationMs: number;
}

export interface TenantFigures {
  readonly tenantId: string;
  readonly sent: number;
  readonly calls: number;
  readonly throttled: number;
  readonly maxCallsInAnySecond: number;
  readonly deliveredPerSecond: number;
  /** Longest pause between two accepted sends of the tenant (a session handoff shows here). */
  readonly maxSendGapMs: number;
  /**
   * The tenant's first and last accepted send, from the run's first accepted send: a late start
   * (the session taken late) shows in the first, a slow tail (a retry after a 429) in the last.
   */
  readonly firstSendMs: number;
  readonly lastSendMs: number;
  /** When an instance first ran a message of the tenant's session (same origin). */
  readonly firstMessageMs: number;
  /**
   * For each 429 (first 10): the longest pause between two of the tenant's calls in the second
   * before it, and how many calls arrived in the 200 ms before it. A pause then a bunch is
   * calls that were paced evenly but reached Teams late together (a stalled event loop).
   */
  readonly throttledAfter: readonly { pauseMs: number; callsIn200ms: number }[];
  /** Processes that held the tenant's session, in order (pid), and the gaps between holds. */
  readonly holders: readonly number[];
}

export interface ScaleOutRun extends ScaleOutRow {
  readonly calls: number;
  readonly throttled: number;
  readonly sent: number;
  readonly ledger: Record<string, number>;
  /** Seconds from the first to the last accepted send. */
  readonly sendSeconds: number;
  /** From every instance being up to the first accepted send (instances taking sessions). */
  readonly firstSendAfterStartMs: number;
  readonly enqueueMs: number;
  readonly capped: boolean;
  readonly queueLeft: { active: number; scheduled: number; locked: number; deadLettered: number };
  readonly tenantsDetail: readonly TenantFigures[];
  /** Herald's `metric` counts summed over the instances (deferred, retried, throttled…). */
  readonly metrics: Record<string, number>;
  readonly instancesDetail: readonly {
    pid: number;
    cpuMs: number;
    rssPeakMb: number;
    invocations: number;
    failedInvocations: number;
    sessionsHeld: number;
    warnings: number;
    loopDelayMs: LoopDelay;
    handler: ProcessorResult["handler"];
  }[];
  /** The orchestrator's (the simulator's) event-loop delay: it timestamps calls this late. */
  readonly simulatorLoopDelayMs: LoopDelay;
  readonly logSamples: readonly string[];
}

export interface ScaleOutFigures {
  readonly latencyMs: number;
  readonly settings: SessionSettings;
  readonly rows: readonly ScaleOutRow[];
  readonly runs: readonly ScaleOutRun[];
}

export interface ScaleOutOptions {
  readonly instances: readonly number[];
  readonly shapes: readonly { readonly tenants: number; readonly usersPerTenant: number }[];
  readonly latencyMs: number;
  readonly settings: SessionSettings;
  /** A run stops after this long even if work is left; what is left is reported as lost. */
  readonly capMs: number;
  readonly text: string;
  readonly log: (line: string) => void;
}

const PER_TENANT = GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit / GLOBAL_PER_BOT_PER_TENANT_LIMIT.seconds;
/** Routes Teams rate-limits: every Bot Connector route. */
const COUNTED: ReadonlySet<RouteName> = new Set(ROUTE_NAMES.filter((r) => r !== "unknown"));
const QUEUE_NAME = "herald-work";

/** Most events in any window [t, t + windowMs) of sorted times (two pointers). */
export function maxInWindow(sortedTimes: readonly number[], windowMs = 1000): number {
  let best = 0;
  let start = 0;
  for (let end = 0; end < sortedTimes.length; end += 1) {
    while (sortedTimes[end]! - sortedTimes[start]! >= windowMs) start += 1;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

function maxGap(sortedTimes: readonly number[]): number {
  let gap = 0;
  for (let i = 1; i < sortedTimes.length; i += 1)
    gap = Math.max(gap, sortedTimes[i]! - sortedTimes[i - 1]!);
  return gap;
}

function ratePerSecond(count: number, times: readonly number[]): number {
  if (times.length < 2) return 0;
  const span = times[times.length - 1]! - times[0]!;
  return span <= 0 ? 0 : (count * 1000) / span;
}

interface Tenant {
  readonly tenantId: string;
  readonly users: readonly SimUser[];
}

interface StoredRequest {
  readonly requestId: string;
  readonly recipients: Recipient[];
  /** The rows as written, by recipient key (what the fan-out puts in each work item). */
  readonly written: ReadonlyMap<string, WrittenRow>;
}

/** Stores each tenant's request and its ledger rows as the dispatcher would have left them. */
async function storeRequests(
  tables: TablesTarget,
  tenants: readonly Tenant[],
  text: string,
): Promise<Map<string, StoredRequest>> {
  const factory = new TableFactory(
    loadConfig({ TableStorageConnection: tables.connectionString, TableNamePrefix: tables.prefix }),
  );
  const requests = new NotificationRequestStore(factory);
  const ledger = new DeliveryLedger(factory);
  const stored = new Map<string, StoredRequest>();
  for (const tenant of tenants) {
    const requestId = `scale-${randomUUID()}`;
    const recipients: Recipient[] = tenant.users.map((u) => ({ aadObjectId: u.aadObjectId }));
    const message = { text, format: "markdown" as const };
    // The claim check as intake stores it (body first), already dispatched: this scenario
    // measures the deliveries, which are what calls Teams, not the fan-out.
    await requests.createWithBody(
      {
        id: requestId,
        state: "dispatched",
        source: "queue",
        tenantId: tenant.tenantId,
        message,
        recipientCount: recipients.length,
      },
      { schemaVersion: 1, id: requestId, tenantId: tenant.tenantId, recipients, message },
    );
    const { written } = await ledger.createRows(
      { tenantId: tenant.tenantId, id: requestId },
      recipients.map((recipient) => ({ recipientKey: recipientKey(recipient), recipient })),
    );
    stored.set(tenant.tenantId, { requestId, recipients, written });
  }
  return stored;
}

async function ledgerOf(
  tables: TablesTarget,
  request: RequestKey,
): Promise<Record<string, number>> {
  const factory = new TableFactory(
    loadConfig({ TableStorageConnection: tables.connectionString, TableNamePrefix: tables.prefix }),
  );
  const counts: Record<string, number> = {};
  for await (const row of new DeliveryLedger(factory).list(request))
    counts[row.state] = (counts[row.state] ?? 0) + 1;
  return counts;
}

/**
 * Puts every tenant's delivery work items on the queue (what the dispatcher's fan-out
 * enqueues), tenants interleaved so every tenant's session has work from the start.
 */
function enqueueAll(
  queue: LocalQueue,
  tenants: readonly Tenant[],
  stored: ReadonlyMap<string, StoredRequest>,
): { count: number; enqueueMs: number } {
  const messages = [];
  const longest = Math.max(...tenants.map((t) => t.users.length));
  // As the fan-out decides it for each request (dispatch.ts).
  const distinct = new Map(
    [...stored].map(([tenant, { recipients }]) => [tenant, namesDistinctPeople(recipients)]),
  );
  for (let i = 0; i < longest; i += 1) {
    for (const tenant of tenants) {
      const { requestId, recipients, written } = stored.get(tenant.tenantId)!;
      const recipient = recipients[i];
      if (recipient === undefined) continue;
      const options = {
        distinctPeople: distinct.get(tenant.tenantId) === true,
        written: written.get(recipientKey(recipient)),
      };
      messages.push(
        deliveryMessage(deliveryWork(requestId, tenant.tenantId, recipient, 1, undefined, options)),
      );
    }
  }
  const started = Date.now();
  queue.send(messages);
  return { count: messages.length, enqueueMs: Date.now() - started };
}

/** Waits until the queue is empty (nothing visible, scheduled or locked) or the cap passes. */
async function waitUntilEmpty(
  queue: LocalQueue,
  sim: TeamsSimulator,
  total: number,
  capMs: number,
): Promise<{
  capped: boolean;
  left: { active: number; scheduled: number; locked: number; deadLettered: number };
}> {
  const deadline = Date.now() + capMs;
  let lastCount = 0;
  for (;;) {
    await sleep(250);
    const sent = sim.countRoute("sendActivity", 201);
    // The queue's own counts decide the end.
    if (sent >= total || Date.now() - lastCount >= 2_000) {
      lastCount = Date.now();
      const left = queue.counts();
      if (left.active + left.scheduled + left.locked === 0) return { capped: false, left };
    }
    if (Date.now() > deadline) return { capped: true, left: queue.counts() };
  }
}

/** K processes, one broker database, one simulator: one run of the scenario. */
async function runOnce(
  sim: TeamsSimulator,
  tablesConnection: string,
  tenants: readonly Tenant[],
  instances: number,
  options: ScaleOutOptions,
): Promise<ScaleOutRun> {
  sim.reset(); // fresh rate windows and recordings; reset also clears the latency
  sim.setLatency(options.latencyMs);
  const tables = freshTables(tablesConnection);
  await seedUsers(
    tables,
    sim,
    tenants.flatMap((t) => t.users),
    true,
  );
  const stored = await storeRequests(tables, tenants, options.text);
  const queueDirectory = mkdtempSync(join(tmpdir(), "herald-scale-"));
  const queue = new LocalQueue({
    directory: queueDirectory,
    queueName: QUEUE_NAME,
    sessions: true,
    lockDurationMs: options.settings.lockDurationMs,
  });
  // The work is on the queue before any instance starts: sending it here, in the simulator's
  // process, while instances send would stall the simulator's event loop and bunch the arrival
  // times it records. Instances that start take the sessions as they would take a backlog in
  // Azure.
  const { count, enqueueMs } = enqueueAll(queue, tenants, stored);
  const started = await Promise.allSettled(
    Array.from({ length: instances }, () =>
      startProcessorWorker({
        kind: "processor",
        tables,
        botId: sim.botId,
        queueDirectory,
        queueName: QUEUE_NAME,
        ...options.settings,
      }),
    ),
  );
  const workers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  // Every instance is up (composition root built, botbuilder loaded): all start draining now.
  if (workers.length === instances) for (const worker of workers) worker.go();
  const startedAt = Date.now();
  // Stop the instances whatever happens, or their processes outlive the bench.
  let drained: Awaited<ReturnType<typeof waitUntilEmpty>>;
  let results: ProcessorResult[];
  const simLoop = new LoopDelaySampler();
  try {
    const failed = started.find((s) => s.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    drained = await waitUntilEmpty(queue, sim, count, options.capMs);
  } finally {
    results = await Promise.all(workers.map((w) => w.stop()));
    rmSync(queueDirectory, { recursive: true, force: true });
  }
  const simulatorLoopDelayMs = simLoop.stop();
  const { capped, left } = drained;

  const counted = sim.requests.filter((r) => COUNTED.has(r.route));
  const tenantsDetail: TenantFigures[] = [];
  const ledgerTotal: Record<string, number> = {};
  const allSends: number[] = [];
  for (const tenant of tenants) {
    const { requestId } = stored.get(tenant.tenantId)!;
    const ledger = await ledgerOf(tables, { tenantId: tenant.tenantId, id: requestId });
    for (const [state, n] of Object.entries(ledger))
      ledgerTotal[state] = (ledgerTotal[state] ?? 0) + n;
    const mine = counted.filter((r) => r.tenantId === tenant.tenantId);
    const times = mine.map((r) => r.at).sort((a, b) => a - b);
    const sends = mine
      .filter((r) => r.route === "sendActivity" && r.status === 201)
      .map((r) => r.at)
      .sort((a, b) => a - b);
    allSends.push(...sends);
    const session = sessionOf(tenant.tenantId);
    const holds = results
      .flatMap((p) =>
        p.holds.filter((h) => h.sessionId === session).map((h) => ({ ...h, pid: p.pid })),
      )
      .sort((a, b) => a.from - b.from);
    tenantsDetail.push({
      tenantId: tenant.tenantId,
      sent: ledger.sent ?? 0,
      calls: mine.length,
      throttled: mine.filter((r) => r.status === 429).length,
      maxCallsInAnySecond: maxInWindow(times),
      deliveredPerSecond: round(ratePerSecond(ledger.sent ?? 0, sends), 1),
      maxSendGapMs: maxGap(sends),
      firstSendMs: sends[0] ?? 0,
      lastSendMs: sends.at(-1) ?? 0,
      firstMessageMs: holds[0]?.from ?? 0,
      throttledAfter: mine
        .filter((r) => r.status === 429)
        .slice(0, 10)
        .map((r) => {
          const before = times.filter((t) => t < r.at && t >= r.at - 1000);
          return {
            pauseMs: maxGap(before),
            callsIn200ms: before.filter((t) => t >= r.at - 200).length,
          };
        }),
      holders: holds.map((h) => h.pid),
    });
  }
  allSends.sort((a, b) => a - b);
  const runFirstSend = allSends[0] ?? 0;
  const tenantsFromFirstSend = tenantsDetail.map((t) => ({
    ...t,
    firstSendMs: t.firstSendMs - runFirstSend,
    lastSendMs: t.lastSendMs - runFirstSend,
    firstMessageMs: t.firstMessageMs - runFirstSend,
  }));
  const sent = ledgerTotal.sent ?? 0;
  const recipients = tenants.reduce((n, t) => n + t.users.length, 0);
  const metrics: Record<string, number> = {};
  for (const r of results)
    for (const [name, n] of Object.entries(r.metrics)) metrics[name] = (metrics[name] ?? 0) + n;
  const calls = counted.length;
  const throttled = counted.filter((r) => r.status === 429).length;
  return {
    instances,
    tenants: tenants.length,
    usersPerTenant: tenants[0]?.users.length ?? 0,
    latencyMs: options.latencyMs,
    allowedPerSecond: PER_TENANT * tenants.length,
    deliveredPerSecond: round(ratePerSecond(sent, allSends), 1),
    maxCallsInAnySecondPerTenant: Math.max(0, ...tenantsDetail.map((t) => t.maxCallsInAnySecond)),
    share429: calls === 0 ? 0 : round(throttled / calls, 4),
    lost: recipients - sent,
    calls,
    throttled,
    sent,
    ledger: ledgerTotal,
    sendSeconds:
      allSends.length < 2 ? 0 : round((allSends[allSends.length - 1]! - allSends[0]!) / 1000, 2),
    firstSendAfterStartMs: allSends.length === 0 ? -1 : allSends[0]! - startedAt,
    enqueueMs,
    capped,
    queueLeft: {
      active: left.active,
      scheduled: left.scheduled,
      locked: left.locked,
      deadLettered: left.deadLettered,
    },
    tenantsDetail: tenantsFromFirstSend,
    metrics,
    instancesDetail: results.map((r) => ({
      pid: r.pid,
      cpuMs: r.cpuMs,
      rssPeakMb: r.rssPeakMb,
      invocations: r.invocations,
      failedInvocations: r.failedInvocations,
      sessionsHeld: new Set(r.holds.map((h) => h.sessionId)).size,
      warnings: r.logLevels.warning ?? 0,
      loopDelayMs: r.loopDelayMs,
      handler: r.handler,
    })),
    simulatorLoopDelayMs,
    logSamples: results.flatMap((r) => r.logSamples).slice(0, 10),
  };
}

/** Only the figures issue 9 names, for `scaleOut` in results.json. */
export function scaleOutRow(run: ScaleOutRun): ScaleOutRow {
  return {
    instances: run.instances,
    tenants: run.tenants,
    usersPerTenant: run.usersPerTenant,
    latencyMs: run.latencyMs,
    allowedPerSecond: run.allowedPerSecond,
    deliveredPerSecond: run.deliveredPerSecond,
    maxCallsInAnySecondPerTenant: run.maxCallsInAnySecondPerTenant,
    share429: run.share429,
    lost: run.lost,
  };
}

/**
 * The scale-out scenario (issue 9): K independent processor processes, each with its own
 * composition root and pacer, drain one session-enabled work queue (the real local broker's
 * queue on one shared database file: one session per tenant, held by one process at a time) against one simulator enforcing Teams' limits, so its per-tenant counters see every
 * process's calls. Users are seeded with their 1:1 conversation ids (one Teams call each), and
 * each tenant's request is stored with its ledger rows and put on the queue as its delivery
 * work items (what the dispatcher's fan-out enqueues); see docs/benchmarks.md.
 */
export async function scaleOutScenario(
  tablesConnection: string,
  options: ScaleOutOptions,
): Promise<ScaleOutFigures> {
  const sim = await startTeamsSimulator({
    recordBodies: false,
    enforceRateLimits: true,
    latencyMs: options.latencyMs,
  });
  const runs: ScaleOutRun[] = [];
  try {
    for (const shape of options.shapes) {
      // One tenant: the simulator's own; several: tenants of their own (1:1 chats only).
      const tenants: Tenant[] = Array.from({ length: shape.tenants }, (_, i) => {
        const tenantId = i === 0 && shape.tenants === 1 ? sim.tenantId : randomUUID();
        return {
          tenantId,
          users: sim.addUsers(shape.usersPerTenant, tenantId === sim.tenantId ? {} : { tenantId }),
        };
      });
      for (const instances of options.instances) {
        options.log(
          `   K = ${instances}, ${shape.tenants} tenant${shape.tenants === 1 ? "" : "s"} × ${shape.usersPerTenant} users…`,
        );
        const run = await runOnce(sim, tablesConnection, tenants, instances, options);
        options.log(`     ${verdictLine(run)}`);
        runs.push(run);
      }
    }
  } finally {
    await sim.close();
  }
  return {
    latencyMs: options.latencyMs,
    settings: options.settings,
    rows: runs.map(scaleOutRow),
    runs,
  };
}

/** Each budget of DESIGN.md / issue 9 a row is held to, with whether it holds. */
export function budgetsOf(row: ScaleOutRow): { name: string; ok: boolean }[] {
  const checks = [
    {
      name: `≤ ${PER_TENANT} calls in any second per tenant`,
      ok: row.maxCallsInAnySecondPerTenant <= PER_TENANT,
    },
    { name: "429 share < 0.5 %", ok: row.share429 < 0.005 },
    { name: "lost 0", ok: row.lost === 0 },
  ];
  if (row.tenants === 1)
    checks.push({
      name: "≥ 95 % of 50/s",
      ok: row.deliveredPerSecond >= 0.95 * row.allowedPerSecond,
    });
  else if (row.instances >= 2)
    checks.push({
      name: `≥ 90 % of ${row.allowedPerSecond}/s`,
      ok: row.deliveredPerSecond >= 0.9 * row.allowedPerSecond,
    });
  return checks;
}

function verdictLine(row: ScaleOutRow): string {
  const missed = budgetsOf(row).filter((b) => !b.ok);
  return `${row.deliveredPerSecond}/s of ${row.allowedPerSecond}/s, max ${row.maxCallsInAnySecondPerTenant} calls in 1 s, ${(row.share429 * 100).toFixed(2)} % 429, lost ${row.lost}: ${missed.length === 0 ? "PASS" : `MISS (${missed.map((b) => b.name).join("; ")})`}`;
}

const HEADER = [
  "K",
  "tenants × users",
  "allowed/s",
  "delivered/s",
  "% of allowed",
  "max calls in 1 s / tenant",
  "429 share",
  "lost",
  "result",
];

function cells(row: ScaleOutRow): string[] {
  const missed = budgetsOf(row).filter((b) => !b.ok);
  const rateBudgeted = row.tenants === 1 || row.instances >= 2;
  return [
    String(row.instances),
    `${row.tenants} × ${row.usersPerTenant.toLocaleString("en-US")}`,
    String(row.allowedPerSecond),
    String(row.deliveredPerSecond),
    `${((row.deliveredPerSecond / row.allowedPerSecond) * 100).toFixed(1)} %${rateBudgeted ? "" : " (not budgeted)"}`,
    String(row.maxCallsInAnySecondPerTenant),
    `${(row.share429 * 100).toFixed(2)} %`,
    String(row.lost),
    missed.length === 0 ? "PASS" : `MISS: ${missed.map((b) => b.name).join("; ")}`,
  ];
}

export function scaleOutTextTable(rows: readonly ScaleOutRow[]): string {
  const all = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  return [line(HEADER), "-".repeat(line(HEADER).length), ...rows.map((r) => line(cells(r)))].join(
    "\n",
  );
}

export function scaleOutMarkdownTable(rows: readonly ScaleOutRow[]): string {
  const bold = (c: string) => (c.startsWith("PASS") || c.startsWith("MISS") ? `**${c}**` : c);
  return [
    `| ${HEADER.join(" | ")} |`,
    `|${HEADER.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${cells(r).map(bold).join(" | ")} |`),
  ].join("\n");
}
