import { isAbsolute, relative } from "node:path";

import type { Config } from "../config";
import type { AttachedAzurite } from "./azurite-client";
import { describeDuration } from "./azurite-protocol";
import type { RunningLocalHost } from "./local-host";
import type { HostSettings } from "./settings";
import type { StartedTables, TablesPlan } from "./tables";

/** What `npm start` prints once it serves: functions, queues, tables, settings and warnings. */
export function printBanner(
  out: (line: string) => void,
  info: {
    root: string;
    host: RunningLocalHost;
    config: Config;
    tables: StartedTables;
    plan: TablesPlan;
    localSettings: boolean;
    shadowed: readonly string[];
    hostJson: Pick<
      HostSettings,
      "maxConcurrentCalls" | "maxConcurrentSessions" | "maxConcurrentCallsPerSession"
    >;
  },
): void {
  const { host, config } = info;
  const rel = (path: string) => {
    const inside = relative(info.root, path);
    return inside === "" ? "." : inside.startsWith("..") || isAbsolute(inside) ? path : inside;
  };
  const width = Math.max(
    0,
    ...host.http.routes.map((r) => r.functionName.length),
    ...host.queues.map((q) => q.functionName.length),
  );
  out("");
  out("Herald local host (the same handlers the Functions host runs; no Core Tools needed)");
  out("");
  out("Functions:");
  for (const route of host.http.routes) {
    const methods = [...route.methods].join(",");
    const auth =
      route.authLevel === "anonymous"
        ? ""
        : `  (authLevel ${route.authLevel}: not enforced locally, as with Core Tools)`;
    out(`  ${route.functionName.padEnd(width)}  [${methods}] ${host.http.urlOf(route)}${auth}`);
  }
  for (const { functionName, queue } of host.queues) {
    const h = info.hostJson;
    const concurrency = queue.sessions
      ? `sessions: up to ${h.maxConcurrentSessions} at once, ${h.maxConcurrentCallsPerSession} calls each`
      : `up to ${h.maxConcurrentCalls} at once`;
    out(
      `  ${functionName.padEnd(width)}  serviceBusTrigger: local queue "${queue.queueName}" in ${rel(queue.path)}` +
        ` (${concurrency}, dead-letter after ${queue.maxDeliveryCount} deliveries)`,
    );
  }
  for (const { functionName, reason } of host.skipped) {
    out(`  ${functionName.padEnd(width)}  serviceBusTrigger: NOT RUN (${reason})`);
  }
  out("");
  const { azurite, dataDir } = info.tables;
  if (azurite && dataDir) {
    out(`Table Storage: Azurite ${azurite.tableEndpoint}, tables in ${rel(dataDir)}`);
    for (const line of azuriteLines(azurite, info.plan, rel)) out(`  ${line}`);
  } else if (info.plan.kind === "embedded") {
    out("Table Storage: the Azurite already running on the configured port");
  } else {
    out(`Table Storage: ${info.plan.description}`);
  }
  if (config.serviceBus.kind !== "none") {
    out(
      "Service Bus: ServiceBusConnection is set, so the functions send to Service Bus; this local host does not receive from it (func start does). Unset it to use the local queue.",
    );
  }
  out(
    `Settings: built-in defaults${info.localSettings ? " < local.settings.json" : ""} < environment` +
      (info.shadowed.length > 0
        ? ` (environment overrides local.settings.json for ${info.shadowed.join(", ")})`
        : ""),
  );
  out(
    config.graph.proactiveInstall
      ? `Proactive install: on (Graph ${config.graph.endpoint}, app ${config.graph.teamsAppId ?? ""}): users Herald has never seen get the app installed, then the notification`
      : 'Proactive install: off (users Herald has never seen are unreachable; see README, "Reach people who never opened the bot")',
  );
  if (config.bot.kind === "anonymous") {
    const bar = "!".repeat(78);
    out("");
    out(bar);
    out("!! WARNING: MicrosoftAppId is not set. The bot endpoint accepts ANONYMOUS requests");
    out("!! (no Bot Framework token is checked) and replies without authenticating.");
    out("!! This is for local development with the Agents Playground only; a deployment");
    out("!! refuses to start without MicrosoftAppId.");
    out(bar);
  } else {
    out(`Bot: ${config.bot.appType} app ${config.bot.appId} (Bot Framework tokens required)`);
  }
  out("");
  out("Chat with the bot: npm run playground (in another terminal). Stop: Ctrl+C.");
  out("");
}

/** What the banner says of the data folder's Azurite: which process, reused or started, how it ends. */
function azuriteLines(
  azurite: AttachedAzurite,
  plan: TablesPlan,
  rel: (path: string) => string,
): string[] {
  const { status } = azurite;
  // The status was taken as this host attached: it is one of the hosts.
  const others = status.hosts.filter((pid) => pid !== process.pid).length;
  const lines = [
    azurite.how === "started"
      ? `Azurite process ${azurite.pid}: started by this npm start (log ${rel(azurite.logFile)})`
      : `Azurite process ${azurite.pid}: reused, running since ${status.startedAt}` +
        (others > 0 ? `, ${others} other npm start${others === 1 ? "" : "s"} attached` : "") +
        ` (log ${rel(azurite.logFile)})`,
  ];
  if (status.portTaken !== undefined) {
    lines.push(`(port ${status.portTaken} was in use when it started: it took a free one)`);
  }
  const port = Number(new URL(azurite.tableEndpoint).port);
  if (plan.kind === "embedded" && plan.explicit && port !== plan.port) {
    lines.push(
      `(the settings name port ${plan.port}: npm run azurite:stop, then npm start, to move it there)`,
    );
  }
  lines.push(
    "It keeps running when npm start stops or crashes, as Table Storage outlives a Function App; " +
      (status.idleMs > 0
        ? `it stops by itself ${describeDuration(status.idleMs)} after the last npm start left, `
        : "") +
      "or now with: npm run azurite:stop",
  );
  return lines;
}
