import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { CloudAdapter } from "botbuilder";

import type { Config } from "../config";
import { policyOf } from "../connector/botbuilder-connector";
import type { Logger } from "../logging";
import type { RelayWork, RosterSyncWork, WelcomeWork } from "../notifications/work-items";
import type { QueuePort } from "../queue/queue-port";
import { RelayLedger } from "../store/relay-ledger";
import { TableFactory } from "../store/table-factory";
import { TeamStore } from "../store/teams";
import { UserReferenceStore } from "../store/user-references";
import { WelcomeLedger } from "../store/welcome-ledger";
import { createBotAdapter } from "./adapter";
import { type CardClicker, HeraldBot } from "./herald-bot";
import { MentionRelay } from "./mention-relay";
import { handleMessages } from "./messages-endpoint";
import type { PaceCall, ProactiveDeps } from "./proactive";
import { syncTeamRoster } from "./roster-sync";
import {
  runWelcome,
  runWelcomeCheck,
  type WelcomeCheckOutcome,
  type WelcomeWorkDeps,
} from "./welcome-check";
import type { WelcomeCheckJob } from "./welcome-target";
import { Welcomer } from "./welcomes";

export interface BotServices {
  readonly adapter: CloudAdapter;
  readonly botAppId: string;
  readonly bot: HeraldBot;
  readonly users: UserReferenceStore;
  readonly teams: TeamStore;
  readonly welcomer: Welcomer;
  /** The `POST|HEAD /api/messages` handler. */
  handle(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit>;
  /** The bot's work items, run by the work queue trigger in the tenant's session. */
  syncTeamRoster(job: RosterSyncWork, logger?: Logger): Promise<{ members: number }>;
  welcome(work: WelcomeWork, logger?: Logger): Promise<WelcomeCheckOutcome>;
  checkWelcome(job: WelcomeCheckJob, logger?: Logger): Promise<WelcomeCheckOutcome>;
  relay(work: RelayWork, logger?: Logger): Promise<void>;
}

export interface BotServicesOptions {
  /** Share one factory (and its table clients) with other services of the process. */
  tables?: TableFactory;
  /** Members per `getPagedMembers` page (default 500, Teams' maximum). */
  rosterPageSize?: number;
  clock?: () => Date;
  /** Test seam: where Bot Framework signing keys come from (stands in for Azure AD). */
  openIdMetadataUrl?: string;
  /** The tenant pacer's wait (the same pacer as deliveries); none: calls are not paced. */
  pace?: PaceCall;
  /** Takes clicks on the buttons of Herald's cards; none: every click is refused. */
  cardClicks?: CardClicker;
}

/** The bot's part of the composition root (shared/composition.ts builds it once per process). */
export function createBotServices(
  config: Config,
  logger: Logger,
  queue: QueuePort,
  options: BotServicesOptions = {},
): BotServices {
  const tables = options.tables ?? new TableFactory(config);
  const clock = options.clock ?? (() => new Date());
  const users = new UserReferenceStore(tables, clock);
  const teams = new TeamStore(tables, clock);
  // Each claim schedules its lease check on the work queue (welcome-check work items).
  const welcomer = new Welcomer(
    new WelcomeLedger(tables, { leaseMs: config.welcomeLeaseMs, clock }),
    { queue, clock },
  );
  const { adapter, botAppId, requiresAuthentication } = createBotAdapter(
    config.bot,
    logger,
    options.openIdMetadataUrl !== undefined ? { openIdMetadataUrl: options.openIdMetadataUrl } : {},
  );
  if (config.allowedTenantIds !== undefined) {
    logger.info("Tenant allow-list on", { tenants: [...config.allowedTenantIds].join(",") });
  }
  const proactive: ProactiveDeps = {
    adapter,
    botAppId,
    serviceUrls: policyOf(config),
    pace: options.pace ?? (() => Promise.resolve()),
  };
  const bot = new HeraldBot({
    users,
    teams,
    welcomer,
    queue,
    clock,
    readReceipts: config.events.enabled,
    ...(options.cardClicks !== undefined ? { cardClicks: options.cardClicks } : {}),
  });
  const endpoint = {
    adapter,
    bot,
    requiresAuthentication,
    allowedTenantIds: config.allowedTenantIds,
  };
  // The relay's lease bounds one send like a welcome's, so it shares that setting.
  const relayLedger = new RelayLedger(tables, { leaseMs: config.welcomeLeaseMs, clock });
  const relay = new MentionRelay({ ...proactive, users, teams, ledger: relayLedger, queue });
  const welcomeDeps = (jobLogger: Logger | undefined): WelcomeWorkDeps => ({
    ...proactive,
    welcomer,
    users,
    teams,
    logger: jobLogger ?? logger,
  });
  return {
    adapter,
    botAppId,
    bot,
    users,
    teams,
    welcomer,
    handle: (request, context) => handleMessages(endpoint, request, context),
    syncTeamRoster: (job, jobLogger) =>
      syncTeamRoster(
        {
          ...proactive,
          users,
          teams,
          welcomer,
          logger: jobLogger ?? logger,
          clock,
          ...(options.rosterPageSize !== undefined ? { pageSize: options.rosterPageSize } : {}),
        },
        job,
      ),
    welcome: (work, jobLogger) => runWelcome(welcomeDeps(jobLogger), work),
    checkWelcome: (job, jobLogger) => runWelcomeCheck(welcomeDeps(jobLogger), job),
    relay: (work, jobLogger) => relay.run(work, jobLogger ?? logger),
  };
}
