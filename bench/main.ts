/**
 * `npm run bench`: Herald's performance figures, all from one run on this machine, each with
 * its budget (shared/DESIGN.md) beside it. Writes bench/results.json, bench/throughput.svg and
 * the results section of docs/benchmarks.md. See docs/benchmarks.md for the method.
 *
 * Process layout: this process runs the Teams connector simulator and the report; Azurite's
 * Table service runs in a worker process of its own, and so does each measured subject
 * (Herald's pipeline, the botbuilder baseline, the bot endpoint), so memory and CPU figures
 * are the subject's alone.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";

import { readHostJson } from "../shared/local-host/settings";
import { brokerCostScenario } from "./broker-cost";
import { changesScenario } from "./changes";
import { lineChart } from "./chart";
import { coldStartScenario } from "./cold-start";
import { endpointScenario } from "./endpoint";
import { startServiceWorker } from "./fork";
import { installScenario } from "./install";
import {
  machine,
  machineLine,
  markdownTable,
  type Results,
  rows,
  type ScaleOutDetail,
  textTable,
} from "./report";
import {
  scaleOutMarkdownTable,
  scaleOutScenario,
  scaleOutTextTable,
  type SessionSettings,
} from "./scale-out";
import { limitsScenario, MESSAGE_TEXT, overheadScenario } from "./scenarios";
import { raiseStandIns, standInsRecord } from "./stand-in-priority";
import { round } from "./stats";
import { ensureTeamsFx, type TeamsFxInstall } from "./teamsfx";

const ROOT = resolve(__dirname, "../..");
const OUT = join(ROOT, "bench/out");
const DOC = join(ROOT, "docs/benchmarks.md");
const START_MARK = "<!-- bench:results:start -->";
const END_MARK = "<!-- bench:results:end -->";

/** Sizes of each run, overridable for a quick try (`BENCH_SCALE=0.2 npm run bench`). */
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const size = (n: number) => Math.max(10, Math.round(n * SCALE));

function log(message: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function chart(r: Results): string {
  const l = r.limits;
  const o = r.overhead;
  return lineChart(
    "Herald: notifications delivered per second (what the Teams simulator accepted)",
    [
      {
        title: `At Teams' limits: simulator enforcing them, ${l.latencyMs} ms latency`,
        yLabel: "delivered / s",
        series: [
          {
            label: "Herald, stored 1:1 ids",
            color: "#0b6e4f",
            values: l.steady.teams.deliveredPerSecond,
          },
          {
            label: "Herald, first contact",
            color: "#57a773",
            values: l.firstContact.teams.deliveredPerSecond,
            dashed: true,
          },
          ...(r.install === undefined
            ? []
            : [
                {
                  label: "Herald, first contact through install",
                  color: "#3a86ff",
                  values: r.install.teams.deliveredPerSecond,
                  dashed: true,
                },
              ]),
          {
            label: "botbuilder loop, sequential",
            color: "#d1495b",
            values: l.baselineSequential.teams.deliveredPerSecond,
          },
          {
            label: "botbuilder, Promise.all",
            color: "#edae49",
            values: l.baselinePromiseAll.teams.deliveredPerSecond,
          },
          ...("skipped" in l.baselineTeamsFx
            ? []
            : [
                {
                  label: "TeamsFx template",
                  color: "#7b2cbf",
                  values: l.baselineTeamsFx.teams.deliveredPerSecond,
                },
              ]),
        ],
        guides: [
          {
            value: l.allowedPerSecond,
            label: `allowed: ${l.allowedPerSecond} calls/s per bot and tenant`,
          },
          { value: l.allowedPerSecond * 0.95, label: "95 % budget" },
        ],
      },
      {
        title: "Pipeline overhead: simulator at 0 ms, no limits, Azurite tables",
        yLabel: "delivered / s",
        series: [
          {
            label: "Herald (16 concurrent calls)",
            color: "#0b6e4f",
            values: o.herald.teams.deliveredPerSecond,
          },
          {
            label: "botbuilder loop, sequential",
            color: "#d1495b",
            values: o.baseline.teams.deliveredPerSecond,
          },
          ...("skipped" in o.teamsfx
            ? []
            : [
                {
                  label: "TeamsFx template",
                  color: "#7b2cbf",
                  values: o.teamsfx.teams.deliveredPerSecond,
                },
              ]),
        ],
        guides: [{ value: 1000, label: "budget: 1,000/s" }],
      },
    ],
    `${r.startedAt} · ${machineLine(r.machine)}`,
  );
}

async function updateDoc(markdown: string): Promise<void> {
  if (!existsSync(DOC)) return;
  const doc = readFileSync(DOC, "utf8");
  const start = doc.indexOf(START_MARK);
  const end = doc.indexOf(END_MARK);
  if (start < 0 || end < start) {
    log(`docs/benchmarks.md has no ${START_MARK} … ${END_MARK} section: not updated`);
    return;
  }
  await writeFormatted(
    DOC,
    `${doc.slice(0, start + START_MARK.length)}\n${markdown}\n${doc.slice(end)}`,
  );
}

/** The figures gathered so far (all of them unless BENCH_ONLY picks some). */
type PartialResults = { -readonly [K in keyof Results]?: Results[K] };

/**
 * The session settings every scale-out instance drains with: host.json's, as the Functions
 * host would apply them, so a change there is measured here. The poll interval and lock
 * duration are the local session queue's own (Service Bus has neither knob: its receivers
 * wait on the broker, and its default lock is one minute).
 */
function scaleOutSettings(): SessionSettings {
  const host = readHostJson(ROOT);
  return {
    // Overridable for a diagnosis only (e.g. 1: one tenant per instance); the table's figures
    // are measured with host.json's value.
    maxConcurrentSessions: Number(
      process.env.BENCH_MAX_CONCURRENT_SESSIONS ?? host.maxConcurrentSessions,
    ),
    maxConcurrentCallsPerSession: host.maxConcurrentCallsPerSession,
    sessionIdleTimeoutMs: host.sessionIdleTimeoutMs,
    pollIntervalMs: Number(process.env.BENCH_SESSION_POLL_MS ?? 1000),
    lockDurationMs: 60_000,
  };
}

/** 6. Scale-out: K = 1, 2, 4, 8 processor processes on one session queue (issue 9). */
async function runScaleOut(tablesConnection: string, partial: PartialResults): Promise<void> {
  const started = Date.now();
  const host = machine();
  const settings = scaleOutSettings();
  log(
    `6. scale-out: K = 1, 2, 4, 8 processes on one session queue (sessions ${settings.maxConcurrentSessions}, calls/session ${settings.maxConcurrentCallsPerSession}, idle ${settings.sessionIdleTimeoutMs} ms), 100 ms latency…`,
  );
  const figures = await scaleOutScenario(tablesConnection, {
    instances: (process.env.BENCH_SCALE_OUT_K ?? "1,2,4,8").split(",").map(Number),
    // `BENCH_SCALE_OUT_SHAPES=4x300` runs only that shape (tenants × users), for a diagnosis.
    shapes: (process.env.BENCH_SCALE_OUT_SHAPES ?? `1x${size(1200)},4x${size(300)}`)
      .split(",")
      .map((shape) => {
        const [tenants, users] = shape.split("x").map(Number);
        return { tenants: tenants ?? 1, usersPerTenant: users ?? size(1200) };
      }),
    latencyMs: 100,
    settings,
    capMs: 120_000,
    text: MESSAGE_TEXT,
    log,
  });
  const detail: ScaleOutDetail = {
    startedAt: new Date(started).toISOString(),
    durationSeconds: round((Date.now() - started) / 1000, 0),
    machine: { ...host, loadAverageEnd: round(loadavg()[0] ?? 0, 2), ...standInsRecord() },
    method: {
      instances:
        "separate Node processes (bench/worker.ts, kind processor), each with its own createHeraldServices and so its own pacer",
      queue:
        "the real local broker (node:sqlite) on one database file shared by every instance: one session per tenant (sessionId = lower-cased tenant id), one holder at a time",
      enqueue:
        "per tenant, the request stored with NotificationRequestStore.createWithBody and its ledger rows created, then deliveryMessage(deliveryWork(…)) per recipient enqueued once every instance was draining (no dispatch, no intake), each marked distinctPeople and carrying its row's ETag as the fan-out writes them for a request whose recipients are all AAD ids",
      teams:
        "one simulator in the orchestrator (its rate-limit counters see every instance), Teams' limits enforced per tenant, 100 ms latency, users seeded with their 1:1 conversation ids (1 call each)",
      deliveredPerSecond:
        "ledger rows sent / seconds from the first to the last accepted send (all tenants together)",
      maxCallsInAnySecondPerTenant:
        "most calls (any status) that reached the simulator for one tenant in any sliding window [t, t + 1 s)",
      share429: "429 answers / calls, all tenants",
      lost: "recipients whose ledger row is not sent at the end (cap 120 s per run)",
    },
    settings,
    runs: figures.runs,
  };
  partial.scaleOut = figures.rows;
  partial.scaleOutDetail = detail;
  process.stdout.write(`\n${scaleOutTextTable(figures.rows)}\n\n`);
}

/** Figures 5, 1 + 3a, 2 + 3b, 2c, against one Azurite. */
async function runScenarios(
  tablesConnection: string,
  teamsfx: TeamsFxInstall,
  partial: PartialResults,
): Promise<void> {
  if (wanted("endpoint")) {
    log("5. endpoint latency: POST /api/messages through the local host…");
    partial.endpoint = await endpointScenario(tablesConnection, OUT, {
      users: size(300),
      teams: size(100),
      rosterSize: 5000,
      warmup: 20,
    });
  }
  if (wanted("overhead")) {
    log(
      `1. pipeline overhead: ${size(10_000).toLocaleString("en-US")} requests, then 3a. the baselines…`,
    );
    partial.overhead = await overheadScenario(tablesConnection, size(10_000), {
      baselineCapMs: 12_000,
      teamsfx,
      teamsfxUsers: size(1_000),
    });
  }
  if (wanted("limits")) {
    log("2. at Teams' limits (100 ms latency), then 3b. the baselines…");
    partial.limits = await limitsScenario(tablesConnection, {
      steady: size(1200),
      firstContact: size(480),
      latencyMs: 100,
      baselineCapMs: 15_000,
      teamsfx,
      teamsfxUsers: size(60),
    });
  }
  if (wanted("changes")) {
    log(`2d. update and recall of ${size(1_000)} sent copies at Teams' limits (100 ms latency)…`);
    partial.changes = await changesScenario(tablesConnection, {
      recipients: size(1_000),
      latencyMs: 100,
    });
  }
  if (wanted("install")) {
    log(
      `2c. first contact through install: ${size(300)} users only Graph knows (Graph enforcing 30 installs/s, Teams' limits at 100 ms)…`,
    );
    partial.install = await installScenario(tablesConnection, {
      users: size(300),
      latencyMs: 100,
    });
  }
  if (wanted("scaleOut")) await runScaleOut(tablesConnection, partial);
}

/**
 * `BENCH_ONLY=cold-start,broker,endpoint,overhead,limits,install,changes` (any of them) runs only those and prints
 * their figures as JSON, writing nothing: for a quick look, e.g. before and after a change.
 * `BENCH_ONLY=scaleOut` runs only the scale-out scenario and merges its figures into
 * bench/results.json (the other keys kept) and the docs table.
 * `BENCH_ONLY=report` runs nothing and rewrites the outputs from bench/results.json.
 */
const ONLY = new Set((process.env.BENCH_ONLY ?? "").split(",").filter((s) => s !== ""));
const wanted = (name: string) => ONLY.size === 0 || ONLY.has(name);

/** Writes a file as the repository's Prettier config would format it (`npm run lint` checks). */
async function writeFormatted(file: string, text: string): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a dev tool, loaded only here
  const prettier = require("prettier") as typeof import("prettier");
  const options = (await prettier.resolveConfig(file)) ?? {};
  writeFileSync(file, await prettier.format(text, { ...options, filepath: file }));
}

/** Writes the table, results.json, the chart and the doc section for one run's results. */
async function writeOutputs(results: Results): Promise<void> {
  const list = rows(results);
  await writeFormatted(
    join(ROOT, "bench/results.json"),
    JSON.stringify({ ...results, table: list }, null, 2),
  );
  writeFileSync(join(ROOT, "bench/throughput.svg"), chart(results));
  await updateDoc(
    [
      `Run ${results.startedAt} (${results.durationSeconds} s) on ${machineLine(results.machine)}.`,
      "",
      markdownTable(list),
      ...(results.scaleOut === undefined || results.scaleOutDetail === undefined
        ? []
        : [
            "",
            `Scale-out (6): run ${results.scaleOutDetail.startedAt} (${results.scaleOutDetail.durationSeconds} s) on ${machineLine(results.scaleOutDetail.machine)}.`,
            "",
            scaleOutMarkdownTable(results.scaleOut),
          ]),
    ].join("\n"),
  );
  process.stdout.write(`\n${textTable(list)}\n\n`);
  if (results.scaleOut !== undefined)
    process.stdout.write(`${scaleOutTextTable(results.scaleOut)}\n\n`);
  log(`machine: ${machineLine(results.machine)}`);
  log("wrote bench/results.json, bench/throughput.svg and the table in docs/benchmarks.md");
  const missed = list.filter((r) => r.verdict === "MISS");
  if (missed.length > 0)
    log(`budgets missed: ${missed.map((r) => `${r.id} ${r.figure}`).join("; ")}`);
}

async function main(): Promise<void> {
  if (ONLY.has("report")) {
    // Re-renders the outputs from the last run's results.json (after a change to the report).
    const { table: _table, ...last } = JSON.parse(
      readFileSync(join(ROOT, "bench/results.json"), "utf8"),
    ) as Results & { table: unknown };
    await writeOutputs(last);
    return;
  }
  mkdirSync(OUT, { recursive: true });
  const started = Date.now();
  const host = machine();
  log(`machine: ${machineLine(host)}`);
  const partial: PartialResults = {};

  // Cold start first, while nothing else of the bench is running.
  if (wanted("cold-start")) {
    log("4. cold start: building (tsc, esbuild) and loading the app in fresh processes…");
    partial.coldStart = await coldStartScenario(ROOT, OUT, 10);
  }
  if (wanted("broker")) {
    log("7. local broker: CPU per message beside Azurite's per Table request…");
    partial.broker = await brokerCostScenario(size(5_000));
  }

  if (
    wanted("endpoint") ||
    wanted("overhead") ||
    wanted("limits") ||
    wanted("install") ||
    wanted("changes") ||
    wanted("scaleOut")
  ) {
    // Only the baselines (figures 1 and 2) use TeamsFx: the others need not install it.
    const baselines = wanted("overhead") || wanted("limits");
    const teamsfx: TeamsFxInstall = baselines
      ? await ensureTeamsFx(OUT)
      : { ok: false, reason: "no baseline in this run" };
    if (baselines)
      log(
        teamsfx.ok
          ? `3. baseline: TeamsFx ${teamsfx.version} from bench/out/teamsfx`
          : `3. baseline: TeamsFx unavailable (${teamsfx.reason}); botbuilder baselines only`,
      );
    // After cold start, the builds and the TeamsFx install, which measure or use the machine at
    // its own priority; before Azurite, which inherits the raise.
    raiseStandIns();
    log(`   Azurite and the simulator ${standInsRecord().standIns ?? ""}`);
    const azurite = await startServiceWorker({ kind: "azurite" });
    try {
      await runScenarios(azurite.ready.url, teamsfx, partial);
    } finally {
      await azurite.stop();
    }
  }

  const machineNow = {
    ...host,
    loadAverageEnd: round(loadavg()[0] ?? 0, 2),
    ...standInsRecord(),
  };
  const {
    coldStart,
    broker,
    endpoint,
    overhead,
    limits,
    install,
    changes,
    scaleOut,
    scaleOutDetail,
  } = partial;
  if (ONLY.size === 1 && scaleOut !== undefined && scaleOutDetail !== undefined) {
    // Only the scale-out ran: its figures replace the last ones, every other key is kept.
    const { table: _table, ...last } = JSON.parse(
      readFileSync(join(ROOT, "bench/results.json"), "utf8"),
    ) as Results & { table: unknown };
    await writeOutputs({ ...last, scaleOut, scaleOutDetail });
    return;
  }
  if (
    coldStart === undefined ||
    endpoint === undefined ||
    overhead === undefined ||
    limits === undefined
  ) {
    process.stdout.write(`${JSON.stringify({ machine: machineNow, ...partial }, null, 2)}\n`);
    return;
  }
  const results: Results = {
    startedAt: new Date(started).toISOString(),
    durationSeconds: round((Date.now() - started) / 1000, 0),
    machine: machineNow,
    overhead,
    limits,
    ...(install !== undefined ? { install } : {}),
    ...(changes !== undefined ? { changes } : {}),
    coldStart,
    endpoint,
    ...(broker !== undefined ? { broker } : {}),
    ...(scaleOut !== undefined && scaleOutDetail !== undefined ? { scaleOut, scaleOutDetail } : {}),
  };
  await writeOutputs(results);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
