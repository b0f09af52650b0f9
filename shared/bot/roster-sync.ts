import { randomUUID } from "node:crypto";

import {
  type CloudAdapter,
  type ConversationReference,
  type TeamsChannelAccount,
  TeamsInfo,
} from "botbuilder";
import { z } from "zod";

import { ValidationError } from "../errors";
import type { Logger } from "../logging";
import type { TeamStore } from "../store/teams";
import type { UserObservation, UserReferenceStore } from "../store/user-references";
import { senderFor } from "./connector";
import type { Welcomer } from "./welcomes";

/** The body of a `roster-sync` work item on the notifications queue. */
export interface RosterSyncJob {
  tenantId: string;
  teamId: string;
  serviceUrl: string;
}

export const rosterSyncJobSchema = z.object({
  tenantId: z.string().trim().min(1),
  teamId: z.string().trim().min(1),
  serviceUrl: z
    .string()
    .trim()
    .refine((v) => /^https?:\/\/[^\s/]+/i.test(v), "must be an http(s) URL"),
});

/** Value of `WORK_KIND_PROPERTY` for roster syncs. */
export const ROSTER_SYNC_KIND = "roster-sync";

export interface RosterSyncDeps {
  adapter: CloudAdapter;
  /** "" when anonymous (local); the bot's app id otherwise. */
  botAppId: string;
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
 * Runs from the queue, never inside the bot's HTTP turn. Idempotent: a redelivered job
 * rewrites nothing that has not changed. Also the recovery path of the team welcome.
 */
export async function syncTeamRoster(
  deps: RosterSyncDeps,
  job: RosterSyncJob,
): Promise<{ members: number }> {
  const parsed = rosterSyncJobSchema.safeParse(job);
  if (!parsed.success) {
    throw new ValidationError(
      `Invalid roster-sync job: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    );
  }
  const { tenantId, teamId, serviceUrl } = parsed.data;
  const clock = deps.clock ?? (() => new Date());
  const logger = deps.logger.with({ tenantId, teamId });

  const team = await deps.teams.get(tenantId, teamId);
  if (team?.status === "removed") {
    logger.info("Roster sync skipped: Herald was removed from the team since it was queued");
    return { members: 0 };
  }

  const syncId = randomUUID();
  const startedAt = clock();
  const reference: Partial<ConversationReference> = {
    channelId: "msteams",
    serviceUrl,
    conversation: { id: teamId, isGroup: true, conversationType: "channel", tenantId, name: "" },
  };
  let members = 0;
  let pages = 0;
  await deps.adapter.continueConversationAsync(deps.botAppId, reference, async (context) => {
    let continuationToken: string | undefined;
    do {
      const page = await TeamsInfo.getPagedMembers(
        context,
        deps.pageSize ?? DEFAULT_PAGE_SIZE,
        continuationToken,
      );
      pages++;
      const people = (page.members ?? []).filter(isUser);
      const observedAt = clock();
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

    if (team !== undefined) {
      await deps.welcomer.ensureTeam(
        senderFor(context, logger),
        { tenantId, teamId, name: team.name, serviceUrl },
        logger,
      );
    }
  });

  const removed = await deps.teams.removeMembersNotIn(tenantId, teamId, syncId, startedAt);
  await deps.teams.recordRosterSync(tenantId, teamId, { memberCount: members, syncedAt: clock() });
  logger.info("Roster synced", { members, pages, removed: removed.length });
  return { members };
}

/** People (Teams ids `29:…`, or an emulator's own); bots (`28:…`) and rows without an id are skipped. */
function isUser(member: TeamsChannelAccount): boolean {
  return typeof member.id === "string" && member.id !== "" && !member.id.startsWith("28:");
}
