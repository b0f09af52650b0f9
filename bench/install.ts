import { randomUUID } from "node:crypto";

import { GRAPH_INSTALL_PER_APP_PER_TENANT } from "../shared/graph/graph-limits";
import { type GraphSimulator, startGraphSimulator } from "../test/graph-simulator";
import { startTeamsSimulator } from "../test/simulator";
import { runInstallWorker } from "./fork";
import { freshTables, ledgerStates, seedUsers } from "./infra";
import { INSTALL_EVENTS } from "./install-job";
import type { InstallRecipient, InstallResult } from "./jobs";
import { MAX_CONCURRENT_CALLS, MESSAGE_TEXT } from "./scenarios";
import { sustainedRate, type TeamsView, teamsView } from "./sim-stats";
import { perSecond, round } from "./stats";

/** The manifest id the Graph simulator's catalog publishes and Herald installs. */
const TEAMS_APP_ID = "7c0e4a2b-5d1f-4e8a-9b3c-2f6d8e1a4b50";

export interface InstallCalls {
  readonly calls: number;
  readonly created: number;
  /** 409: already installed (a repeated step). */
  readonly alreadyInstalled: number;
  readonly throttled: number;
  readonly other: number;
}

export interface InstallFigures {
  readonly recipients: number;
  readonly byUserPrincipalName: number;
  readonly byAadObjectId: number;
  readonly latencyMs: number;
  /**
   * Teams' side of an install as simulated: it posts the install's events to the bot at once,
   * the installed app's chat is readable in Graph at once, and the tenant's service URL is known
   * (a colleague is): either way to the 1:1 chat may win for each user.
   */
  readonly teamsSide: string;
  /** Graph's documented install limit per app per tenant, per second. */
  readonly allowedInstallsPerSecond: number;
  readonly installs: InstallCalls;
  /** Successful installs between the first and the last one, over the time between them. */
  readonly installsPerSecond: number;
  /** Successful installs per whole second from the first one. */
  readonly installsPerSecondSeries: readonly number[];
  readonly installThrottledShare: number;
  /**
   * GET …/installedApps and …/installedApps/{id}/chat: two per user whose chat Herald takes
   * from Graph, under Graph's 30/s per tenant for these reads (sustained rate, as for installs).
   */
  readonly graphReads: {
    readonly calls: number;
    readonly throttled: number;
    readonly perSecond: number;
  };
  readonly userLookups: number;
  /** Which way each delivery's 1:1 chat was learned (from Herald's log lines). */
  readonly chatLearned: { readonly fromGraph: number; readonly fromInstallEvents: number };
  readonly deliveredPerSecond: number;
  /** Seconds from the first install to the last delivery. */
  readonly installToLastDeliverySeconds: number;
  readonly teams: TeamsView;
  /** Every Teams call of the phase: Herald's sends and member lookups, the bot's reads. */
  readonly teamsThrottledShare: number;
  readonly messagesPerUser: {
    readonly exactlyOne: number;
    readonly none: number;
    readonly moreThanOne: number;
  };
  /** The install events Teams posted to the bot endpoint, and how many were not answered 200. */
  readonly installEvents: { readonly posted: number; readonly notOk: number };
  readonly ledger: Record<string, number>;
  readonly worker: InstallResult;
}

function installCalls(graph: GraphSimulator): InstallCalls {
  const installs = graph.requests.filter((r) => r.route === "installApp");
  const count = (status: number) => installs.filter((r) => r.status === status).length;
  const created = count(201);
  const alreadyInstalled = count(409);
  const throttled = count(429);
  return {
    calls: installs.length,
    created,
    alreadyInstalled,
    throttled,
    other: installs.length - created - alreadyInstalled - throttled,
  };
}

/**
 * 2c. First contact through install: `users` people who exist only in Microsoft Graph (no
 * user reference, no Teams user until the install makes one), notified one request each,
 * alternately by UPN and by AAD object id. The Graph simulator enforces Graph's install limit
 * (30/s per app per tenant) and posts each install's events to Herald's bot endpoint, served
 * over HTTP in the worker; the Teams simulator enforces Teams' limits with `latencyMs` on
 * every call, as in the other phases at Teams' limits. Herald paces its installs itself.
 */
export async function installScenario(
  tablesConnection: string,
  options: { users: number; latencyMs: number },
): Promise<InstallFigures> {
  const teams = await startTeamsSimulator({
    recordBodies: false,
    enforceRateLimits: true,
    latencyMs: options.latencyMs,
  });
  // Started once the worker serves the bot endpoint (the simulator posts install events there).
  const started: { graph?: GraphSimulator } = {};
  try {
    const tables = freshTables(tablesConnection);
    // Someone in the tenant is known, so Herald knows the tenant's service URL and may take the
    // chat from Graph when it has it before the install's events arrive.
    const colleague = teams.addUser();
    await seedUsers(tables, teams, [colleague], true);

    const people = Array.from({ length: options.users }, (_, i) => ({
      id: randomUUID(),
      userPrincipalName: `new.colleague.${String(i + 1).padStart(5, "0")}@contoso.example`,
    }));
    const recipients = people.map((p, i): InstallRecipient =>
      i % 2 === 0 ? { userPrincipalName: p.userPrincipalName } : { aadObjectId: p.id },
    );
    const worker = await runInstallWorker(
      {
        kind: "install",
        tables,
        tenantId: teams.tenantId,
        botId: teams.botId,
        teamsAppId: TEAMS_APP_ID,
        recipients,
        maxConcurrentCalls: MAX_CONCURRENT_CALLS,
        text: MESSAGE_TEXT,
        capMs: 120_000,
      },
      async ({ url }) => {
        const graph = await startGraphSimulator({
          teams,
          botEndpoint: url,
          installActivities: "immediate",
          chatAvailability: "at-install",
          enforceRateLimits: true,
        });
        graph.publishApp({ externalId: TEAMS_APP_ID });
        for (const person of people) graph.addUser(person);
        started.graph = graph;
        return { GraphEndpoint: graph.endpoint };
      },
    );
    const g = started.graph;
    if (g === undefined) throw new Error("install phase: the Graph simulator never started");
    await g.settled();

    const installs = installCalls(g);
    const createdAt = g.requests
      .filter((r) => r.route === "installApp" && r.status === 201)
      .map((r) => r.at);
    const firstInstall = createdAt.length > 0 ? Math.min(...createdAt) : worker.startedAt;
    const reads = g.requests.filter(
      (r) => r.route === "listInstalledApps" || r.route === "getInstalledAppChat",
    );
    const view = teamsView(teams, worker.startedAt, worker.endedAt + 50);
    const counts = people.map((p) => {
      const teamsUser = g.user(p.id)?.teamsUser;
      return teamsUser === undefined ? 0 : teams.messagesToUser(teamsUser).length;
    });
    const ledger = await ledgerStates(tables);
    const fromGraph = worker.events[INSTALL_EVENTS.chatFromGraph] ?? 0;
    return {
      recipients: people.length,
      byUserPrincipalName: recipients.filter((r) => "userPrincipalName" in r).length,
      byAadObjectId: recipients.filter((r) => "aadObjectId" in r).length,
      latencyMs: options.latencyMs,
      teamsSide:
        "install events posted at once; installed app's chat readable at once; tenant's service URL known",
      allowedInstallsPerSecond:
        GRAPH_INSTALL_PER_APP_PER_TENANT.limit / GRAPH_INSTALL_PER_APP_PER_TENANT.seconds,
      installs,
      installsPerSecond: round(sustainedRate(createdAt), 1),
      installsPerSecondSeries: perSecond(createdAt, firstInstall),
      installThrottledShare: installs.calls === 0 ? 0 : installs.throttled / installs.calls,
      graphReads: {
        calls: reads.length,
        throttled: reads.filter((r) => r.status === 429).length,
        perSecond: round(sustainedRate(reads.map((r) => r.at)), 1),
      },
      userLookups: g.countRoute("getUser"),
      chatLearned: { fromGraph, fromInstallEvents: Math.max(0, (ledger.sent ?? 0) - fromGraph) },
      deliveredPerSecond: view.sustainedDeliveredPerSecond,
      installToLastDeliverySeconds:
        view.lastDeliveryAt === undefined
          ? 0
          : round((view.lastDeliveryAt - firstInstall) / 1000, 1),
      teams: view,
      teamsThrottledShare: view.calls === 0 ? 0 : view.throttled / view.calls,
      messagesPerUser: {
        exactlyOne: counts.filter((c) => c === 1).length,
        none: counts.filter((c) => c === 0).length,
        moreThanOne: counts.filter((c) => c > 1).length,
      },
      installEvents: {
        posted: g.postedActivities.length,
        notOk: g.postedActivities.filter((a) => a.status !== 200).length,
      },
      ledger,
      worker,
    };
  } finally {
    await started.graph?.close();
    await teams.close();
  }
}
