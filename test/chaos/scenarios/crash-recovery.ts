import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { FolderAzurite } from "../../../shared/local-host/azurite-client";
import type { NotificationStatus } from "../../../shared/notifications/status";
import { LocalQueue } from "../../../shared/queue/local-queue";
import { startTeamsSimulator, type TeamsSimulator } from "../../simulator";
import { seededRandom } from "../../simulator/faults";
import { brokerDatabase } from "../../support/local-broker";
import { buildHostBundle, HostProcess } from "../support/host-process";
import {
  judge,
  type PlannedRequest,
  planRequests,
  type Tenant,
  type Verdict,
} from "../support/workload";

export interface CrashRecoveryOptions {
  /** Notification requests submitted (half over HTTP, half straight onto the local queue). */
  readonly requests: number;
  /** Users installed through the bot endpoint before the run (plus one blocked, one broken). */
  readonly users: number;
  /** SIGKILLs, each after a random uptime in `uptimeMs`. */
  readonly kills: number;
  readonly uptimeMs: readonly [number, number];
  readonly seed: number;
  /** The local queue's lock duration: how long a killed consumer's messages wait. */
  readonly lockDurationMs: number;
  /**
   * `embedded`: `npm start`'s own Azurite (the data folder's Azurite process, `.data/azurite`),
   * which the first start starts and every later start reuses: a kill of the host never reaches
   * it; `shared`: an Azurite of the test's, which the host does not start either.
   */
  readonly tables: "embedded" | "shared";
  /** Give up waiting for every request to finish after this long. */
  readonly settleTimeoutMs: number;
  readonly log?: (line: string) => void;
}

export interface CrashRecoveryReport extends Verdict {
  readonly kills: number;
  /** Duplicates attributed to each kill (the kill of the host that sent the earlier copy). */
  readonly duplicatesPerKill: number[];
  /**
   * Duplicates that were not a send in flight at a kill (never expected): the earlier copy was
   * recorded `sent` by its host (its "Notification delivered" line names the copy's activity id)
   * or Teams took it in after the last host was spawned (no kill can have cut its send short).
   * Teams has no idempotency key, so only a send whose answer the killed host never recorded may
   * go out again.
   */
  readonly duplicatesNotInFlight: number;
  /** Those duplicates, for the failure message. */
  readonly duplicatesNotInFlightKeys: readonly string[];
  /** Answers of 500 from the host's HTTP endpoints (never expected). */
  readonly http500: number;
  readonly httpRetries: number;
  /** Messages the local queue dead-lettered (never expected). */
  readonly deadLettered: number;
  /** Messages still scheduled for later when every row was final (they will find it final). */
  readonly scheduledLeft: number;
  /** Deliveries that found another invocation's live claim and re-checked later. */
  readonly claimRechecks: number;
  /** Locks a live consumer lost (renewal late or failed): a second copy may run meanwhile. */
  readonly locksLost: number;
  /** What each start said about its tables (`Table Storage: …`, `Azurite process N: …`). */
  readonly startLines: readonly string[];
  /** Distinct Azurite processes the starts used (`embedded`: 1, the same one throughout). */
  readonly azuriteProcesses: number;
  /** Starts that started an Azurite rather than reusing the running one (`embedded`: 1). */
  readonly azuriteStarts: number;
  /** The data folder's Azurite at the end: its pid, attached hosts, saves, unsaved changes. */
  readonly azurite: FolderAzurite | undefined;
  readonly settledAfterMs: number;
  readonly welcomes: number;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/**
 * Crash recovery: the `npm start` host as a child process, users installed through its bot
 * endpoint, requests submitted over HTTP and onto the local queue while the host is killed
 * with SIGKILL at random moments and started again on the same data folder; at the end every
 * request and recipient must be final as planned, and every copy Teams received beyond the
 * first is counted.
 */
export async function runCrashRecovery(
  options: CrashRecoveryOptions,
): Promise<CrashRecoveryReport> {
  const log = options.log ?? (() => undefined);
  const random = seededRandom(options.seed);
  const folder = mkdtempSync(join(tmpdir(), "herald-chaos-"));
  const sim = await startTeamsSimulator({ seed: options.seed });
  const settings: Record<string, string> = {
    TableNamePrefix: `c${randomBytes(5).toString("hex")}`,
  };
  if (options.tables === "shared") {
    const connection = process.env.HERALD_TEST_TABLES_CONNECTION;
    if (connection === undefined) throw new Error("no shared Azurite (jest global setup)");
    settings.TableStorageConnection = connection;
  } else {
    settings.TableStorageConnection = "";
  }
  const script = buildHostBundle(folder);
  const host = new HostProcess({ script, settings, lockDurationMs: options.lockDurationMs });
  const queue = new LocalQueue({ directory: join(folder, ".data", "queue") });
  const workQueue = new LocalQueue({
    directory: join(folder, ".data", "queue"),
    queueName: "herald-work",
    sessions: true,
  });
  let httpRetries = 0;
  // Set when the run ends, by success or failure: the LOB's submit loops stop retrying then
  // (a failed restart used to leave them retrying forever, and jest never exited).
  let ended = false;

  try {
    await host.start();
    log(`host up at ${host.origin}`);
    const tenant = await installUsers(sim, host, options.users);
    const plans = planRequests(sim, tenant, options.requests, options.seed);

    // Submit in the background, at a steady pace, so kills land during intake too.
    let submitted = 0;
    const submitting = (async () => {
      const pending = [...plans];
      const worker = async () => {
        for (let plan = pending.shift(); plan !== undefined; plan = pending.shift()) {
          httpRetries += await submit(plan, host, queue, () => ended);
          submitted += 1;
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
    })();
    // Awaited below; if a restart fails first, its rejection ("the run ended") is not the news.
    submitting.catch(() => undefined);

    const killTimes: number[] = [];
    // When the host after each kill was spawned. Until then no host is alive, so a copy Teams took
    // in before then was sent by a killed host, even one taken in after the kill was noted: the
    // simulator runs on this process's event loop and reads the dead host's last bytes later.
    const respawnTimes: number[] = [];
    for (let k = 0; k < options.kills; k++) {
      const [min, max] = options.uptimeMs;
      await sleep(min + random() * (max - min));
      killTimes.push(Date.now());
      await host.crash();
      log(
        `kill ${k + 1}: ${submitted}/${plans.length} submitted, ${sim.allActivities().length} activities in Teams`,
      );
      // Sometimes stay down a moment: the LOB keeps retrying, the queue keeps filling.
      if (random() < 0.5) await sleep(random() * 500);
      respawnTimes.push(Date.now());
      await host.start();
    }
    await submitting;
    log(`all ${plans.length} submitted; waiting for the queue to drain`);

    const started = Date.now();
    const statuses = await settle(plans, host, [queue, workQueue], options.settleTimeoutMs);
    const settledAfterMs = Date.now() - started;
    const verdict = judge(sim, plans, statuses);
    // What the status API said of each request a recipient is missing from, for the failure.
    for (const lost of verdict.lost) {
      const id = lost.split(" ")[0]!;
      console.log(`crash-recovery: lost ${lost}: ${JSON.stringify(statuses.get(id))}`);
      // Where its work sits in the local broker (active, locked, scheduled, dead, quarantined),
      // if anywhere: a recurrence then says whether the queue or the processing lost it.
      console.log(
        `crash-recovery: broker rows naming ${id}: ${JSON.stringify(rowsNaming(join(folder, ".data", "queue"), id))}`,
      );
    }
    // Activity ids the host recorded as delivered (its log is a file: lines survive a SIGKILL).
    const recorded = new Set(
      host
        .logLines(/Notification delivered/)
        .map((line) => /"activityId":"([^"]+)"/.exec(line)?.[1])
        .filter((id): id is string => id !== undefined),
    );
    const duplicatesPerKill = killTimes.map(() => 0);
    const duplicatesNotInFlightKeys: string[] = [];
    for (const copy of verdict.duplicateCopies) {
      // The kill that cut this earlier copy's send short: the first respawn after Teams took it in.
      const index = respawnTimes.findIndex((t) => t > copy.at);
      if (index >= 0) duplicatesPerKill[index]! += 1;
      if (index < 0 || recorded.has(copy.activityId))
        duplicatesNotInFlightKeys.push(
          `${copy.activityId} at ${copy.at}${index < 0 ? ` (after the last host was spawned; kills at ${killTimes.join(", ")})` : " (recorded sent)"}`,
        );
    }
    const counts = queue.counts();
    // The host's access log: every 500 any endpoint answered, to the LOB client or to Teams.
    const http500 = host.logLines(/-> 500 /).length;
    const rechecks = host.logLines(/checking again/).length;
    const locksLost = host.logLines(/Lock renewal failed|Settling .* failed/).length;
    const startLines = host.startLines();
    const azuriteLines = startLines.flatMap((line) => {
      const match = /^ {2}Azurite process (\d+): (started|reused)/.exec(line);
      return match === null ? [] : [{ pid: match[1]!, how: match[2]! }];
    });
    const azurite = options.tables === "embedded" ? await host.tables() : undefined;
    return {
      ...verdict,
      kills: killTimes.length,
      duplicatesPerKill,
      duplicatesNotInFlight: duplicatesNotInFlightKeys.length,
      duplicatesNotInFlightKeys,
      http500,
      httpRetries,
      deadLettered: counts.deadLettered,
      scheduledLeft: counts.scheduled,
      claimRechecks: rechecks,
      locksLost,
      startLines,
      azuriteProcesses: new Set(azuriteLines.map((a) => a.pid)).size,
      azuriteStarts: azuriteLines.filter((a) => a.how === "started").length,
      azurite,
      settledAfterMs,
      welcomes: sim.allActivities().filter((a) => (a.attachments ?? []).length > 0).length,
    };
  } finally {
    ended = true;
    await host.crash();
    // The folder's Azurite outlived every kill; it saves and stops now, then the folder goes.
    if (options.tables === "embedded") {
      await host.stopTables().catch((error: unknown) => log(String(error)));
    }
    await sim.close();
    if (process.env.HERALD_CHAOS_KEEP === undefined)
      rmSync(folder, { recursive: true, force: true });
    else log(`kept ${folder}`);
  }
}

/**
 * The tables' side of a run, for the lines before its `lost` assertion: what each start said
 * about Table Storage (which Azurite process, started or reused) and the data folder's Azurite
 * at the end (its pid, hosts, how many saves, whether anything is unsaved). A lost request then
 * says whether the tables were the same throughout.
 */
export function describeTables(report: CrashRecoveryReport): string {
  const lines = [
    `crash-recovery: ${report.lost.length} lost, ${report.notTerminal.length} not final, ${report.duplicates} duplicates (per kill ${JSON.stringify(report.duplicatesPerKill)})`,
    `crash-recovery: ${report.startLines.length} start lines, ${report.azuriteProcesses} Azurite process(es), ${report.azuriteStarts} started:`,
    ...report.startLines.map((line) => `  ${line.trim()}`),
  ];
  const azurite = report.azurite;
  if (azurite?.kind === "running") {
    const { status } = azurite;
    lines.push(
      `crash-recovery: Azurite process ${status.pid} at the end: ${status.state}, up since ${status.startedAt}, hosts attached ${JSON.stringify(status.hosts)}, persistence ${JSON.stringify(status.persistence)}`,
    );
  } else if (azurite !== undefined) {
    lines.push(`crash-recovery: the data folder's Azurite at the end: ${JSON.stringify(azurite)}`);
  }
  return lines.join("\n");
}

/** Personal installs through the host's bot endpoint: the references carry the simulator's URL. */
async function installUsers(
  sim: TeamsSimulator,
  host: HostProcess,
  count: number,
): Promise<Tenant> {
  const active = sim.addUsers(count);
  const blocked = sim.addUser({ name: "Blocked User" });
  const broken = sim.addUser({ name: "Broken User" });
  const everyone = [...active, blocked, broken];
  for (let i = 0; i < everyone.length; i += 10) {
    const results = await Promise.all(
      everyone.slice(i, i + 10).map((user) =>
        sim.send(sim.activities.personalInstall(user), {
          endpoint: `${host.origin}/api/messages`,
        }),
      ),
    );
    const bad = results.find((r) => r.status !== 200);
    if (bad !== undefined)
      throw new Error(`install answered ${bad.status}: ${JSON.stringify(bad.body)}`);
  }
  sim.blockUser(blocked);
  sim.failNext("sendActivity", { status: 500, user: broken, times: 1_000_000 });
  return { active, blocked, broken };
}

/**
 * A LOB app's submission: over HTTP it retries until the host answers 202 (a retry of a try
 * that got through is a replay: 202 again; a 409 would be a conflict, which the same body never
 * is), waiting out the host's restarts; onto the queue it is one durable write.
 * Returns the number of retries.
 */
async function submit(
  plan: PlannedRequest,
  host: HostProcess,
  queue: LocalQueue,
  ended: () => boolean,
): Promise<number> {
  if (plan.via === "queue") {
    await queue.enqueue([{ body: plan.body, messageId: plan.id }]);
    return 0;
  }
  for (let attempt = 0; ; attempt++) {
    if (ended()) throw new Error(`the run ended before ${plan.id} was accepted`);
    if (host.running && host.origin !== "") {
      let status: number | undefined;
      try {
        const response = await fetch(`${host.origin}/api/notifications`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(plan.body),
        });
        await response.arrayBuffer();
        status = response.status;
      } catch {
        // The host died under the request: try again once it is back.
      }
      if (status === 202) return attempt;
      // A 500 is counted from the host's log and retried, as a LOB app would.
      if (status !== undefined && status !== 500)
        throw new Error(`POST ${plan.id} answered ${status}`);
    }
    await sleep(50);
  }
}

/**
 * Waits until the local queue is empty and every request is final, then returns what the
 * status API says about each request (undefined: it does not know the id).
 */
/** The local broker's rows whose message id or body names `needle`, for failure diagnostics. */
function rowsNaming(directory: string, needle: string): string[] {
  const rows = brokerDatabase(directory).all<{
    queue: string;
    seq: number;
    state: string;
    deliveries: number;
    locked: number;
    scheduled: number;
  }>(
    `SELECT queue, seq, state, delivery_count AS deliveries, lock_token IS NOT NULL AS locked,
     visible_at > :now AS scheduled FROM messages WHERE message_id = :needle OR instr(body, :needle) > 0`,
    { needle, now: Date.now() },
  );
  return rows.map(
    (r) =>
      `${r.queue}#${r.seq} ${r.state}${r.locked ? " locked" : r.scheduled ? " scheduled" : ""} (deliveries ${r.deliveries})`,
  );
}

async function settle(
  plans: readonly PlannedRequest[],
  host: HostProcess,
  queues: readonly LocalQueue[],
  timeoutMs: number,
): Promise<Map<string, NotificationStatus | undefined>> {
  const deadline = Date.now() + timeoutMs;
  const statuses = new Map<string, NotificationStatus | undefined>();
  let open = [...plans];
  for (;;) {
    // Messages scheduled for later (claim re-checks, back-offs) may remain: once every row is
    // final they can only find it final, so the ledger, not the queue, says when it is over.
    let busy = 0;
    for (const queue of queues) {
      const counts = queue.counts();
      busy += counts.active + counts.locked;
    }
    if (busy === 0 || Date.now() > deadline) {
      const still: PlannedRequest[] = [];
      for (let i = 0; i < open.length; i += 16) {
        const batch = open.slice(i, i + 16);
        const results = await Promise.all(batch.map((p) => status(host, p.id)));
        batch.forEach((plan, j) => {
          const result = results[j];
          statuses.set(plan.id, result);
          if (!isFinal(plan, result)) still.push(plan);
        });
      }
      open = still;
      if (open.length === 0 || Date.now() > deadline) return statuses;
    }
    await sleep(250);
  }
}

function isFinal(plan: PlannedRequest, status: NotificationStatus | undefined): boolean {
  if (status === undefined) return false;
  if (plan.invalid) return status.state === "rejected";
  return status.state === "completed" && status.counts.total === plan.expected.size;
}

async function status(host: HostProcess, id: string): Promise<NotificationStatus | undefined> {
  const response = await fetch(`${host.origin}/api/notifications/${encodeURIComponent(id)}`);
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw new Error(`GET ${id} answered ${response.status}`);
  return (await response.json()) as NotificationStatus;
}
