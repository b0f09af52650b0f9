import type { NotificationClient } from "../client/notification-client";
import { HeraldError, toError } from "../errors";
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
  /** Submits it over Herald's HTTP API at the status endpoint instead (same answer as `send`). */
  readonly submitOverHttp: () => Promise<ExitCode | undefined>;
}

/**
 * `herald notify --wait`: sends, then waits for the request to be final and exits as `herald
 * status` would. Over HTTP Herald answered the send, so a conflict is already known. Over a
 * queue nobody answers, and the status never says whether a refused submission was this copy
 * (it reveals nothing of the stored content). So when the id is already used in the tenant,
 * the request goes to the HTTP API the status comes from, whose answer tells a replay (202)
 * from a conflict (409), instead of onto the queue. Otherwise it is queued, and a conflict
 * counted after the send (a submission of the id that raced ahead of this one) is reported.
 */
export async function waitAfterSend(
  client: NotificationClient,
  request: NotificationRequest,
  options: NotifyWaitOptions,
  io: CliIo,
): Promise<ExitCode> {
  const { id, tenantId } = request;
  const overQueue = !client.confirmsAcceptance;
  const before = overQueue ? await statusBeforeSend(client, request, options) : undefined;
  const askHerald = before !== undefined;
  if (askHerald) {
    writeLine(
      io.stderr,
      `${id} is already used in tenant ${tenantId} (${before.state}): asking Herald at ${options.statusEndpoint} whether this is the same request, instead of queueing a copy nobody could answer for.`,
    );
  }
  const refused = await (askHerald ? options.submitOverHttp() : options.send());
  if (refused !== undefined) return refused;

  const seconds = waitSeconds(options.wait)!;
  if (options.json !== true) writeLine(io.stdout, id);
  writeLine(
    io.stderr,
    overQueue && !askHerald
      ? `Sent notification ${id} to ${client.description}; not accepted by Herald yet. Waiting up to ${seconds} s for Herald to take it and for it to be final…`
      : `Herald accepted notification ${id}. Waiting up to ${seconds} s for it to be final…`,
  );
  const { status } = await waitWithProgress(client, id, { seconds, query: { tenantId } }, io);

  const conflicted = overQueue && !askHerald ? queueConflict(before, status) : undefined;
  if (conflicted !== undefined) {
    writeLine(io.stderr, `herald: ${conflicted}`);
    return EXIT.conflict;
  }
  return reportStatus(
    status,
    { id, endpoint: options.statusEndpoint, tenant: tenantId, seconds, json: options.json },
    io,
  );
}

async function statusBeforeSend(
  client: NotificationClient,
  { id, tenantId }: NotificationRequest,
  options: NotifyWaitOptions,
): Promise<NotificationStatus | undefined> {
  try {
    return await client.status(id, { tenantId, limit: 0 });
  } catch (error) {
    throw new HeraldError(
      `--wait reads the status from ${options.statusEndpoint}, which failed, so nothing was sent: ${toError(error).message}`,
      { cause: error },
    );
  }
}

/** A conflict counted since the send: most likely this one (see `waitAfterSend`). */
function queueConflict(
  before: NotificationStatus | undefined,
  after: NotificationStatus | undefined,
): string | undefined {
  if (after === undefined) return undefined;
  const counted = (after.conflicts?.count ?? 0) - (before?.conflicts?.count ?? 0);
  if (counted <= 0) return undefined;
  return `Herald refused ${counted === 1 ? "a submission" : `${counted} submissions`} of ${after.id} with different content since this one was sent: the id is already used in this tenant by another request, so this notification was most likely not accepted and nothing of it will be delivered. (Herald's status does not say which copy it refused.) Send it again with a new id.`;
}
