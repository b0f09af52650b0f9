import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { CloudAdapter } from "botbuilder";

import type { Config } from "../config";
import type { Logger } from "../logging";
import type { QueuePort } from "../queue/queue-port";
import { TableFactory } from "../store/table-factory";
import { TeamStore } from "../store/teams";
import { UserReferenceStore } from "../store/user-references";
import { WelcomeLedger } from "../store/welcome-ledger";
import { createBotAdapter } from "./adapter";
import { HeraldBot } from "./herald-bot";
import { MentionRelay } from "./mention-relay";
import { handleMessages } from "./messages-endpoint";
import { type RosterSyncDeps, type RosterSyncJob, syncTeamRoster } from "./roster-sync";
import { runWelcomeCheck, type WelcomeCheckOutcome } from "./welcome-check";
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
  /** Runs a `roster-sync` work item (the queue trigger calls this). */
  syncTeamRoster(job: RosterSyncJob, logger?: Logger): Promise<{ members: number }>;
  /**
   * Runs a `welcome-check` work item (the queue trigger calls this): sends a welcome whose
   * claim expired or was released. Throws ValidationError for a malformed body.
   */
  checkWelcome(job: unknown, logger?: Logger): Promise<WelcomeCheckOutcome>;
}

export interface BotServicesOptions {
  /** Share one factory (and its table clients) with other services of the process. */
  tables?: TableFactory;
  /** Members per `getPagedMembers` page (default 500, Teams' maximum). */
  rosterPageSize?: number;
  clock?: () => Date;
  /** Test seam: where Bot Framework signing keys come from (stands in for Azure AD). */
  openIdMetadataUrl?: string;
}

/** The bot's composition root: one per process, built on first use by functions/messages.ts. */
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
  // Each claim schedules its lease check on the notifications queue (welcome-check work items).
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
  const relay = new MentionRelay({ users });
  const bot = new HeraldBot({ adapter, botAppId, users, teams, welcomer, relay, queue });
  const endpoint = {
    adapter,
    bot,
    requiresAuthentication,
    allowedTenantIds: config.allowedTenantIds,
  };
  const rosterDeps: RosterSyncDeps = {
    adapter,
    botAppId,
    users,
    teams,
    welcomer,
    logger,
    clock,
    ...(options.rosterPageSize !== undefined ? { pageSize: options.rosterPageSize } : {}),
  };
  return {
    adapter,
    botAppId,
    bot,
    users,
    teams,
    welcomer,
    handle: (request, context) => handleMessages(endpoint, request, context),
    syncTeamRoster: (job, jobLogger) =>
      syncTeamRoster({ ...rosterDeps, logger: jobLogger ?? logger }, job),
    checkWelcome: (job, jobLogger) =>
      runWelcomeCheck(
        { adapter, botAppId, welcomer, users, teams, logger: jobLogger ?? logger },
        job,
      ),
  };
}
