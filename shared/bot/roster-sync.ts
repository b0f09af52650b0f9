import { randomUUID } from "node:crypto";

import { type TeamsChannelAccount, TeamsInfo } from "botbuilder";

import { statusCodeOf } from "../errors";
import type { Logger } from "../logging";
import type { RosterSyncWork } from "../notifications/work-items";
import type { TeamStore } from "../store/teams";
import type { UserObservation, UserReferenceStore } from "../store/user-references";
import { inConversation, pacedSender, type ProactiveDeps } from "./proactive";
import type { Welcomer } from "./welcomes";

export interface RosterSyncDeps extends ProactiveDeps {
  users: UserReferenceStore;
  teams: TeamStore;
  welcomer: Welcomer;
  logger: Logger;
  /** Members asked for per `getPagedMembers` call (Teams serves at most 500). */
  pageSize?: number;
  clock?: () => Date;
}

const DEFAULT_PAGE_SIZE = 500;

/**
 * Syncs a team's whole roster into the user references and the team's member list, page by
 * page (`TeamsInfo.getPagedMembers`), then marks removed the members no longer listed.
 * Runs as tenant work from the work queue, never inside the bot's HTTP turn, on the service URL
 * of the stored team reference. Idempotent: a redelivered job rewrites nothing that has not
 * changed. Also the recovery path of the team welcome.
 */
export async function syncTeamRoster(
  deps: RosterSyncDeps,
  job: RosterSyncWork,
): Promise<{ members: number }> {
  const { tenantId, teamId } = job;
  const clock = deps.clock ?? (() => new Date());
  const logger = deps.logger.with({ tenantId, teamId });

  const team = await deps.teams.get(tenantId, teamId);
  if (team === undefined) {
    logger.warn("Roster sync skipped: the team is not recorded");
    return { members: 0 };
  }
  if (team.status === "removed") {
    logger.info("Roster sync skipped: Herald was removed from the team since it was queued");
    return { members: 0 };
  }
  const serviceUrl = team.serviceUrl;
  const teamName = team.name;

  const syncId = randomUUID();
  const startedAt = clock();
  let members = 0;
  let pages = 0;
  const at = { tenantId, serviceUrl, conversationId: teamId, scope: "channel" as const };
  try {
    await syncPages();
  } catch (error) {
    // Teams' 403/404 for the team's conversation (the bot was removed, the team deleted) will
    // not change on a retry: record it on the team and stop. Anything else is redelivered.
    const status = statusCodeOf(error);
    if (status !== 403 && status !== 404) throw error;
    logger.warn("Roster sync stopped: Teams refused the team's roster", { status });
    await deps.teams.markStatus(
      tenantId,
      teamId,
      "removed",
      `roster sync: Teams answered ${status}`,
    );
    return { members };
  }
  async function syncPages(): Promise<void> {
    await inConversation(deps, at, async (context) => {
      let continuationToken: string | undefined;
      do {
        await deps.pace(tenantId);
        const page = await TeamsInfo.getPagedMembers(
          context,
          deps.pageSize ?? DEFAULT_PAGE_SIZE,
          continuationToken,
        );
        pages++;
        const people = (page.members ?? []).filter(isUser);
        // As of when the sync was asked for (see rosterSyncWorkSchema): a late sync loses to newer activities.
        const observedAt = job.queuedAt !== undefined ? new Date(job.queuedAt) : clock();
        await deps.users.upsertMany(
          people.map((m): UserObservation => ({
            tenantId,
            teamsUserId: m.id,
            aadObjectId: m.aadObjectId,
            name: m.name,
            userPrincipalName: m.userPrincipalName,
            email: m.email,
            serviceUrl,
            learnedFrom: "roster",
            observedAt,
          })),
        );
        await deps.teams.addMembers(
          tenantId,
          teamId,
          people.map((m) => m.id),
          syncId,
        );
        members += people.length;
        continuationToken = page.continuationToken || undefined;
      } while (continuationToken !== undefined);

      await deps.welcomer.ensureWelcome(
        pacedSender(context, deps, tenantId, logger),
        { scope: "team", tenantId, teamId, name: teamName, serviceUrl },
        logger,
      );
    });
  }

  const removed = await deps.teams.removeMembersNotIn(tenantId, teamId, syncId, startedAt);
  await deps.teams.recordRosterSync(tenantId, teamId, { memberCount: members, syncedAt: clock() });
  logger.info("Roster synced", { members, pages, removed: removed.length });
  return { members };
}

/** People (Teams ids `29:…`, or an emulator's own); bots (`28:…`) and rows without an id are skipped. */
function isUser(member: TeamsChannelAccount): boolean {
  return typeof member.id === "string" && member.id !== "" && !member.id.startsWith("28:");
}
