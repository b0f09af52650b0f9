import { z } from "zod";

import { shortHash, WORK_KINDS, workMessage } from "../notifications/work-items";
import type { OutgoingMessage } from "../queue/queue-port";
import { welcomeKeys, type WelcomeSubject } from "../store/welcome-ledger";

/**
 * A welcome to send, resolved from Herald's stored references: where it goes and the name it
 * greets. Queue messages carry only the subject (`WelcomeSubject`); everything a call needs,
 * the service URL above all, is read from the store when the work runs.
 */
export type WelcomeTarget =
  | {
      scope: "personal";
      tenantId: string;
      teamsUserId: string;
      /** The user's AAD object id, when known: a user Herald installed the app for is not welcomed. */
      aadObjectId?: string | undefined;
      name?: string | undefined;
      conversationId: string;
      serviceUrl: string;
    }
  | {
      scope: "team";
      tenantId: string;
      teamId: string;
      name?: string | undefined;
      serviceUrl: string;
    };

const id = z.string().trim().min(1).max(1024);

/** The body of a `welcome-check` work item: the welcome's subject and the check's round. */
export const welcomeCheckJobSchema = z.discriminatedUnion("scope", [
  z.object({
    scope: z.literal("personal"),
    tenantId: id,
    teamsUserId: id,
    round: z.number().int().min(1).max(100),
  }),
  z.object({
    scope: z.literal("team"),
    tenantId: id,
    teamId: id,
    round: z.number().int().min(1).max(100),
  }),
]);

export type WelcomeCheckJob = z.infer<typeof welcomeCheckJobSchema>;

export function subjectOf(target: WelcomeSubject): WelcomeSubject {
  return target.scope === "personal"
    ? { scope: "personal", tenantId: target.tenantId, teamsUserId: target.teamsUserId }
    : { scope: "team", tenantId: target.tenantId, teamId: target.teamId };
}

/** Where the welcome is posted: the 1:1 chat, or the team's General channel (the team id). */
export function conversationOf(target: WelcomeTarget): string {
  return target.scope === "personal" ? target.conversationId : target.teamId;
}

export function checkJobOf(subject: WelcomeSubject, round: number): WelcomeCheckJob {
  return { ...subjectOf(subject), round };
}

/**
 * The queue message of a check. Its id is derived from the welcome, the claim it watches and
 * the round, so the instances that all saw the same claim schedule one check between them
 * (the queue's duplicate detection drops the copies).
 */
export function welcomeCheckMessage(job: WelcomeCheckJob, claimOwner: string): OutgoingMessage {
  const { partitionKey, rowKey } = welcomeKeys(subjectOf(job));
  return workMessage(
    WORK_KINDS.welcomeCheck,
    job.tenantId,
    job,
    `wc-${shortHash(partitionKey, rowKey, claimOwner, job.round)}`,
    { properties: { round: job.round } },
  );
}
