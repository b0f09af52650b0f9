import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";

import { type SimUser, startTeamsSimulator, type TeamsActivity } from "../test/simulator";
import { ROSTER_SYNC_QUEUED } from "./endpoint-job";
import { startServiceWorker } from "./fork";
import { freshTables, seedSentCards } from "./infra";
import type { EndpointResult } from "./jobs";
import { type LatencySummary, summarize } from "./stats";

export interface EndpointPhase {
  readonly activity: string;
  readonly latency: LatencySummary;
  /** Answers other than 200 (should be none). */
  readonly non200: number;
}

export interface EndpointFigures {
  readonly personalInstall: EndpointPhase;
  readonly message: EndpointPhase;
  readonly teamInstall: EndpointPhase;
  /** 50 Action.Execute clicks on cards Herald sent, all at once (each answered from Tables). */
  readonly cardClicks?: EndpointPhase;
  readonly rosterSize: number;
  /** Roster pages the bot fetched while the team installs were being answered (should be 0). */
  readonly rosterPagesDuringInstalls: number;
  readonly rosterSyncsQueued: number;
  readonly worker: EndpointResult;
}

async function post(url: string, activity: TeamsActivity): Promise<{ ms: number; status: number }> {
  const body = JSON.stringify(activity);
  const t0 = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json; charset=utf-8" },
    body,
  });
  await response.arrayBuffer();
  return { ms: performance.now() - t0, status: response.status };
}

async function phase(
  url: string,
  name: string,
  activities: readonly TeamsActivity[],
): Promise<EndpointPhase> {
  const times: number[] = [];
  let non200 = 0;
  // One at a time: this is the latency of one activity, not the endpoint's throughput.
  for (const activity of activities) {
    const { ms, status } = await post(url, activity);
    times.push(ms);
    if (status !== 200) non200 += 1;
  }
  return { activity: name, latency: summarize(times), non200 };
}

/** Clicks sent together: people answering one approval request at the same moment. */
const CONCURRENT_CLICKS = 50;

/** All at once: each answer's time, as the user who clicked waits for it. */
async function concurrentPhase(
  url: string,
  name: string,
  activities: readonly TeamsActivity[],
): Promise<EndpointPhase> {
  const answers = await Promise.all(activities.map((a) => post(url, a)));
  return {
    activity: name,
    latency: summarize(answers.map((a) => a.ms)),
    non200: answers.filter((a) => a.status !== 200).length,
  };
}

/**
 * 5. Endpoint latency: `POST /api/messages` through the local host's HTTP server, one request
 * at a time, measured by the client (HTTP included); the simulator answers the bot's own calls
 * (welcomes, help replies, member lookups) at once. Team installs are of teams sharing one
 * 5,000-member roster: the answer must not wait for the roster, which goes to the queue.
 */
export async function endpointScenario(
  tablesConnection: string,
  outDir: string,
  options: { users: number; teams: number; rosterSize: number; warmup: number },
): Promise<EndpointFigures> {
  const sim = await startTeamsSimulator({ recordBodies: false });
  const tables = freshTables(tablesConnection);
  const queueDirectory = mkdtempSync(join(outDir, "endpoint-queue-"));
  const worker = await startServiceWorker({
    kind: "endpoint",
    settings: {
      TableStorageConnection: tables.connectionString,
      TableNamePrefix: tables.prefix,
      LocalQueueDirectory: queueDirectory,
    },
  });
  let stopped: EndpointResult | undefined;
  try {
    const url = worker.ready.url;
    const activities = sim.activities;
    const warm: SimUser[] = sim.addUsers(options.warmup);
    // Warm-up (not counted): the first request builds the composition root and loads botbuilder.
    for (const user of warm) {
      await post(url, activities.personalInstall(user));
      await post(url, activities.message(user, "hello"));
    }
    // …and one team install, so the team tables exist as they would in Azure (Bicep creates them).
    const warmTeam = sim.addTeam({ name: "Warm-up team", members: warm });
    await post(url, activities.teamInstall(warmTeam, warm[0]!));
    const users = sim.addUsers(options.users);
    const personalInstall = await phase(
      url,
      "personal install (welcome sent)",
      users.map((u) => activities.personalInstall(u)),
    );
    const message = await phase(
      url,
      "message (help reply sent)",
      users.map((u) => activities.message(u, "hello")),
    );

    const roster = sim.addUsers(options.rosterSize);
    const teams = Array.from({ length: options.teams }, (_, i) =>
      sim.addTeam({ name: `Bench team ${i + 1}`, members: roster }),
    );
    const pagesBefore = sim.countRoute("pagedMembers") + sim.countRoute("members");
    const teamInstall = await phase(
      url,
      `team install (${options.rosterSize.toLocaleString("en-US")} members)`,
      teams.map((t) => activities.teamInstall(t, roster[0]!)),
    );
    const rosterPagesDuringInstalls =
      sim.countRoute("pagedMembers") + sim.countRoute("members") - pagesBefore;
    const cardClicks = await concurrentPhase(
      url,
      `${CONCURRENT_CLICKS} card clicks at once (Action.Execute)`,
      await seedSentCards(tables, sim, users.slice(0, CONCURRENT_CLICKS)),
    );
    const result = (stopped = await worker.stop());
    return {
      personalInstall,
      message,
      teamInstall,
      cardClicks,
      rosterSize: options.rosterSize,
      rosterPagesDuringInstalls,
      // Less the warm-up team's.
      rosterSyncsQueued: (result.events[ROSTER_SYNC_QUEUED] ?? 0) - 1,
      worker: result,
    };
  } finally {
    if (stopped === undefined) await worker.stop().catch(() => undefined);
    await sim.close();
    // The roster syncs the installs queued: nothing runs them here.
    rmSync(queueDirectory, { recursive: true, force: true });
  }
}
