import type { NotificationClient } from "../client/notification-client";
import type { NotificationRequest } from "../notifications/schema";
import type { NotificationStatus } from "../notifications/status";
import { type CliIo, writeLine } from "./cli-io";
import { EXIT, type ExitCode } from "./exit-codes";
import { reportStatus, waitSeconds } from "./status-command";
import { waitWithProgress } from "./wait-progress";

export interface NotifyWaitOptions {
  readonly wait: number | true;
  readonly json?: boolean | undefined;
  /** Where the status is read from, for messages. */
  readonly statusEndpoint: string;
  /** Sends the request; an exit code when Herald refused it (a conflict over HTTP). */
  readonly send: () => Promise<ExitCode | undefined>;
}

/**
 * `herald notify --wait`: sends, then waits for the request to be final and exits as `herald
 * status` would. Over HTTP Herald answered the send, so a conflict is already known. Over a
 * queue nobody answers: a conflict is only visible afterwards as one more refused submission
 * in the status of the request that holds the id, and the status never says whose copy that
 * was (it reveals nothing of the stored content). So this compares the conflict count from
 * just before the send with the one at the end.
 */
export async function waitAfterSend(
  client: NotificationClient,
  request: NotificationRequest,
  options: NotifyWaitOptions,
  io: CliIo,
): Promise<ExitCode> {
  const { id, tenantId } = request;
  const overQueue = !client.confirmsAcceptance;
  const before = overQueue ? await client.status(id, { tenantId, limit: 0 }) : undefined;
  const refused = await options.send();
  if (refused !== undefined) return refused;

  const seconds = waitSeconds(options.wait)!;
  if (options.json !== true) writeLine(io.stdout, id);
  writeLine(
    io.stderr,
    overQueue
      ? `Sent notification ${id} to ${client.description}; not accepted by Herald yet. Waiting up to ${seconds} s for Herald to take it and for it to be final…`
      : `Herald accepted notification ${id}. Waiting up to ${seconds} s for it to be final…`,
  );
  const { status } = await waitWithProgress(client, id, { seconds, query: { tenantId } }, io);

  if (overQueue && status !== undefined) {
    const conflicted = queueConflict(before, status);
    if (conflicted !== undefined) {
      writeLine(io.stderr, `herald: ${conflicted}`);
      return EXIT.conflict;
    }
    if (before !== undefined) {
      writeLine(
        io.stderr,
        `herald: note: ${id} was already in use in tenant ${tenantId} before this send. The copy just sent is a replay of it if its content is the same (nothing new is sent), or a conflict if not, which Herald may not have counted yet. The status below is that of the request holding the id; to be told for sure, send over --endpoint (Herald answers a conflict with exit code 4) or use a new id.`,
      );
    }
  }
  return reportStatus(
    status,
    { id, endpoint: options.statusEndpoint, tenant: tenantId, seconds, json: options.json },
    io,
  );
}

/** A conflict counted since the send: most likely this one (see `waitAfterSend`). */
function queueConflict(
  before: NotificationStatus | undefined,
  after: NotificationStatus,
): string | undefined {
  const counted = (after.conflicts?.count ?? 0) - (before?.conflicts?.count ?? 0);
  if (counted <= 0) return undefined;
  return `Herald refused ${counted === 1 ? "a submission" : `${counted} submissions`} of ${after.id} with different content since this one was sent: the id is already used in this tenant by another request, so this notification was most likely not accepted and nothing of it will be delivered. (Herald's status does not say which copy it refused.) Send it again with a new id.`;
}
