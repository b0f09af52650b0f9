import { GLOBAL_PER_BOT_PER_TENANT_LIMIT } from "../shared/teams-limits";
import { type SimUser, startTeamsSimulator, type TeamsSimulator } from "../test/simulator";
import { runBaselineWorker, runPipelineWorker } from "./fork";
import { freshTables, ledgerStates, seedUsers } from "./infra";
import type { BaselineMode, BaselineResult, PipelineResult } from "./jobs";
import { type TeamsView, teamsView } from "./sim-stats";
import { round } from "./stats";
import { TableRequestCounter } from "./table-request-counter";
import type { TeamsFxInstall } from "./teamsfx";

export const MESSAGE_TEXT = "Your order **42** shipped";
/** host.json `extensions.serviceBus.maxConcurrentCalls`. */
export const MAX_CONCURRENT_CALLS = 16;

export interface OverheadFigures {
  readonly requests: number;
  readonly seedSeconds: number;
  readonly wallSeconds: number;
  readonly notificationsPerSecond: number;
  /** Table Storage round trips per notification sent (a transaction is one), through a counting proxy. */
  readonly tableRequestsPerNotification: number;
  /** Herald worker CPU per notification sent, ms. */
  readonly cpuMsPerNotification: number;
  readonly pipeline: PipelineResult;
  readonly teams: TeamsView;
  readonly ledger: Record<string, number>;
}

export interface BaselineFigures {
  readonly mode: BaselineMode;
  /** Users given to this run (TeamsFx gets a subset: it checks every user before sending). */
  readonly recipients: number;
  /** Users Herald delivered to in the same scenario, for the projection. */
  readonly population: number;
  readonly result: BaselineResult;
  readonly wallSeconds: number;
  /** Users notified per second of the whole run (TeamsFx's checks included). */
  readonly deliveredPerSecond: number;
  /** Time all `population` users would take at the measured rate. */
  readonly projectedSeconds: number;
  readonly capped: boolean;
  readonly teams: TeamsView;
  readonly throttledShare: number;
}

export type BaselineSkip = { readonly mode: "teamsfx"; readonly skipped: string };

interface BaselineRun {
  readonly mode: BaselineMode;
  readonly references: readonly { userId: string; conversationId: string }[];
  readonly population: number;
  readonly capMs: number;
  readonly teamsfxPath?: string;
}

async function baseline(sim: TeamsSimulator, run: BaselineRun): Promise<BaselineFigures> {
  const result = await runBaselineWorker({
    kind: "baseline",
    mode: run.mode,
    serviceUrl: sim.serviceUrl,
    tenantId: sim.tenantId,
    botId: sim.botId,
    references: run.references,
    text: MESSAGE_TEXT,
    capMs: run.capMs,
    ...(run.teamsfxPath !== undefined ? { teamsfxPath: run.teamsfxPath } : {}),
  });
  const teams = teamsView(sim, result.startedAt, result.endedAt + 50);
  const wallSeconds = (result.endedAt - result.startedAt) / 1000;
  const rate = teams.delivered / Math.max(0.001, wallSeconds);
  return {
    mode: run.mode,
    recipients: run.references.length,
    population: run.population,
    result,
    wallSeconds: round(wallSeconds, 2),
    deliveredPerSecond: round(rate, 1),
    projectedSeconds: round(run.population / Math.max(rate, 0.001)),
    capped: result.attempted < run.references.length,
    teams,
    throttledShare: teams.calls === 0 ? 0 : teams.throttled / teams.calls,
  };
}

function referencesOf(sim: TeamsSimulator, users: readonly SimUser[]) {
  return users.map((u) => ({ userId: u.id, conversationId: sim.personalConversationId(u) }));
}

/** Runs the TeamsFx baseline when TeamsFx could be installed; says why not otherwise. */
async function teamsFxBaseline(
  sim: TeamsSimulator,
  teamsfx: TeamsFxInstall,
  run: Omit<BaselineRun, "mode" | "teamsfxPath">,
): Promise<BaselineFigures | BaselineSkip> {
  if (!teamsfx.ok) return { mode: "teamsfx", skipped: teamsfx.reason };
  return baseline(sim, { ...run, mode: "teamsfx", teamsfxPath: teamsfx.modulePath });
}

/** Fresh rate windows and recordings for the next run, as if it ran alone. */
function resetSimulator(sim: TeamsSimulator, latencyMs: number): void {
  sim.reset();
  sim.setLatency(latencyMs);
}

/** One single-recipient request per user through Herald's pipeline worker. */
function runHerald(
  sim: TeamsSimulator,
  tables: Parameters<typeof runPipelineWorker>[0]["tables"],
  users: readonly SimUser[],
  options: { pacing: boolean },
): Promise<PipelineResult> {
  return runPipelineWorker({
    kind: "pipeline",
    tables,
    tenantId: sim.tenantId,
    botId: sim.botId,
    recipients: users.map((u) => u.aadObjectId),
    pacing: options.pacing,
    maxConcurrentCalls: MAX_CONCURRENT_CALLS,
    text: MESSAGE_TEXT,
    capMs: 180_000,
  });
}

export interface OverheadScenario {
  readonly herald: OverheadFigures;
  readonly baseline: BaselineFigures;
  readonly teamsfx: BaselineFigures | BaselineSkip;
}

/**
 * 1. Pipeline overhead: `count` single-recipient requests through the trigger handler, the
 * simulator answering at once with no limits, Herald's pacing off. Users are seeded with
 * their 1:1 conversation ids (steady state: one Teams call per notification).
 * 3a. The baselines over the same users against the same simulator.
 */
export async function overheadScenario(
  tablesConnection: string,
  count: number,
  options: { baselineCapMs: number; teamsfx: TeamsFxInstall; teamsfxUsers: number },
): Promise<OverheadScenario> {
  const sim = await startTeamsSimulator({ recordBodies: false });
  try {
    const users = sim.addUsers(count);
    const tables = freshTables(tablesConnection);
    const seedStart = Date.now();
    await seedUsers(tables, sim, users, true);
    const seedSeconds = (Date.now() - seedStart) / 1000;

    const counter = await TableRequestCounter.start(tables);
    const pipeline = await runHerald(sim, counter.target, users, { pacing: false });
    await counter.close();
    const teams = teamsView(sim, pipeline.startedAt, pipeline.endedAt + 50);
    const wallSeconds = (pipeline.endedAt - pipeline.startedAt) / 1000;
    const ledger = await ledgerStates(tables);
    const sentCount = Math.max(1, ledger.sent ?? 0);
    const herald: OverheadFigures = {
      requests: count,
      seedSeconds: round(seedSeconds, 1),
      wallSeconds: round(wallSeconds, 2),
      notificationsPerSecond: round((ledger.sent ?? 0) / wallSeconds, 0),
      tableRequestsPerNotification: round(counter.count / sentCount, 2),
      cpuMsPerNotification: round(pipeline.cpuMs / sentCount, 3),
      pipeline,
      teams,
      ledger,
    };

    const references = referencesOf(sim, users);
    resetSimulator(sim, 0);
    const sequential = await baseline(sim, {
      mode: "sequential",
      references,
      population: count,
      capMs: options.baselineCapMs,
    });
    resetSimulator(sim, 0);
    const teamsfx = await teamsFxBaseline(sim, options.teamsfx, {
      references: references.slice(0, options.teamsfxUsers),
      population: count,
      capMs: options.baselineCapMs,
    });
    return { herald, baseline: sequential, teamsfx };
  } finally {
    await sim.close();
  }
}

export interface LimitsPhase {
  readonly recipients: number;
  /** Whether the users' 1:1 conversation ids were stored (else each needs a create first). */
  readonly storedConversations: boolean;
  readonly pipeline: PipelineResult;
  readonly teams: TeamsView;
  readonly ledger: Record<string, number>;
  /** Calls (creates + sends) per second between the first and the last call. */
  readonly callsPerSecond: number;
  readonly deliveredPerSecond: number;
  readonly throttledShare: number;
}

async function limitsPhase(
  sim: TeamsSimulator,
  tablesConnection: string,
  users: readonly SimUser[],
  storedConversations: boolean,
): Promise<LimitsPhase> {
  const tables = freshTables(tablesConnection);
  await seedUsers(tables, sim, users, storedConversations);
  const pipeline = await runHerald(sim, tables, users, { pacing: true });
  const teams = teamsView(sim, pipeline.startedAt, pipeline.endedAt + 50);
  return {
    recipients: users.length,
    storedConversations,
    pipeline,
    teams,
    ledger: await ledgerStates(tables),
    callsPerSecond: teams.sustainedCallsPerSecond,
    deliveredPerSecond: teams.sustainedDeliveredPerSecond,
    throttledShare: teams.calls === 0 ? 0 : teams.throttled / teams.calls,
  };
}

export interface LimitsFigures {
  readonly latencyMs: number;
  readonly allowedPerSecond: number;
  readonly steady: LimitsPhase;
  readonly firstContact: LimitsPhase;
  readonly baselineSequential: BaselineFigures;
  readonly baselinePromiseAll: BaselineFigures;
  readonly baselineTeamsFx: BaselineFigures | BaselineSkip;
}

/**
 * 2. At Teams' limits: the simulator enforcing Teams' documented limits with 100 ms latency,
 * Herald pacing itself. Steady state (conversation ids stored: one call per notification),
 * then first contact (create + send: two calls per notification).
 * 3b. The baselines over the steady-state users, each with fresh rate windows.
 */
export async function limitsScenario(
  tablesConnection: string,
  options: {
    steady: number;
    firstContact: number;
    latencyMs: number;
    baselineCapMs: number;
    teamsfx: TeamsFxInstall;
    teamsfxUsers: number;
  },
): Promise<LimitsFigures> {
  const sim = await startTeamsSimulator({
    recordBodies: false,
    enforceRateLimits: true,
    latencyMs: options.latencyMs,
  });
  try {
    const steadyUsers = sim.addUsers(options.steady);
    const newUsers = sim.addUsers(options.firstContact);
    const steady = await limitsPhase(sim, tablesConnection, steadyUsers, true);
    const firstContact = await limitsPhase(sim, tablesConnection, newUsers, false);

    const references = referencesOf(sim, steadyUsers);
    const common = { references, population: steadyUsers.length, capMs: options.baselineCapMs };
    resetSimulator(sim, options.latencyMs);
    const baselineSequential = await baseline(sim, { ...common, mode: "sequential" });
    resetSimulator(sim, options.latencyMs);
    const baselinePromiseAll = await baseline(sim, { ...common, mode: "promise-all" });
    resetSimulator(sim, options.latencyMs);
    const baselineTeamsFx = await teamsFxBaseline(sim, options.teamsfx, {
      ...common,
      references: references.slice(0, options.teamsfxUsers),
    });
    return {
      latencyMs: options.latencyMs,
      allowedPerSecond:
        GLOBAL_PER_BOT_PER_TENANT_LIMIT.limit / GLOBAL_PER_BOT_PER_TENANT_LIMIT.seconds,
      steady,
      firstContact,
      baselineSequential,
      baselinePromiseAll,
      baselineTeamsFx,
    };
  } finally {
    await sim.close();
  }
}
