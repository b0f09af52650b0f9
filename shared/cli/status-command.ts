import { NotificationClient } from "../client/notification-client";
import { isRequestId } from "../notifications/schema";
import type { NotificationStatus, RecipientState, RecipientStatus } from "../notifications/status";
import { type CliIo, UsageError, writeLine } from "./cli-io";
import { EXIT, type ExitCode } from "./exit-codes";
import { resolveStatusEndpoint, type TransportFlags } from "./transport-options";

export interface StatusFlags extends Pick<TransportFlags, "endpoint" | "functionKey"> {
  readonly json?: boolean;
  readonly state?: RecipientState;
  readonly limit?: number;
  /** Seconds to wait for the request to finish (`true`: the default wait). */
  readonly wait?: number | true;
}

export const RECIPIENT_STATES: readonly RecipientState[] = [
  "pending",
  "sent",
  "unreachable",
  "failed",
  "rejected",
];

const DEFAULT_WAIT_SECONDS = 60;
const POLL_MS = 1_000;

function defaultSleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

function isFinal(status: NotificationStatus): boolean {
  return status.state === "completed" || status.state === "rejected";
}

/** `herald status <id>`: the request's per-recipient states, from the HTTP endpoint. */
export async function status(id: string, flags: StatusFlags, io: CliIo): Promise<ExitCode> {
  if (!isRequestId(id)) {
    throw new UsageError(`"${id}" is not a request id (1-128 letters, digits and . _ : @ -)`);
  }
  const { endpoint, functionKey } = resolveStatusEndpoint(flags, io.env ?? process.env);
  const client = new NotificationClient(
    { endpoint, ...(functionKey !== undefined ? { functionKey } : {}) },
    io.clientOptions,
  );
  const query = {
    ...(flags.state !== undefined ? { state: flags.state } : {}),
    ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
  };
  const sleep = io.sleep ?? defaultSleep;
  const waitMs =
    flags.wait === undefined ? 0 : (flags.wait === true ? DEFAULT_WAIT_SECONDS : flags.wait) * 1000;
  let waited = 0;
  let found = await client.status(id, query);
  while (waitMs > 0 && (found === undefined || !isFinal(found)) && waited < waitMs) {
    await sleep(POLL_MS);
    waited += POLL_MS;
    found = await client.status(id, query);
  }

  if (found === undefined) {
    writeLine(
      io.stderr,
      `herald: ${endpoint} has no notification request ${id}${waitMs > 0 ? ` after ${waitMs / 1000} s` : ""} (not taken from the queue yet, or a different endpoint or id)`,
    );
    return EXIT.failure;
  }
  if (flags.json === true) writeLine(io.stdout, JSON.stringify(found, null, 2));
  else printStatus(found, io);
  if (waitMs > 0 && !isFinal(found)) {
    writeLine(io.stderr, `herald: still ${found.state} after ${waitMs / 1000} s`);
    return EXIT.failure;
  }
  return EXIT.ok;
}

function recipientText(status: RecipientStatus): string {
  const r = status.recipient;
  return r.userPrincipalName ?? r.aadObjectId ?? r.teamsUserId ?? r.teamId ?? "?";
}

function printStatus(status: NotificationStatus, io: CliIo): void {
  const out = io.stdout;
  writeLine(
    out,
    `${status.id}: ${status.state}${status.notBefore !== undefined ? ` (not before ${status.notBefore})` : ""}`,
  );
  const c = status.counts;
  writeLine(
    out,
    `  ${c.total} recipient${c.total === 1 ? "" : "s"}: ${c.sent} sent, ${c.pending} pending, ${c.unreachable} unreachable, ${c.failed} failed, ${c.rejected} rejected`,
  );
  for (const error of status.errors ?? [])
    writeLine(out, `  rejected: ${error.path}: ${error.message}`);
  if (status.lastError !== undefined) writeLine(out, `  last error: ${status.lastError}`);
  const width = Math.min(60, Math.max(0, ...status.recipients.map((r) => recipientText(r).length)));
  for (const r of status.recipients) {
    const detail =
      r.lastError ??
      (r.state === "pending" && r.nextAttemptAt !== undefined ? `next try ${r.nextAttemptAt}` : "");
    writeLine(
      out,
      `  ${r.state.padEnd(11)} ${recipientText(r).padEnd(width)}  attempts ${r.attempts}${detail !== "" ? `  ${detail}` : ""}`,
    );
  }
  if (status.recipientsTruncated) writeLine(out, "  … (more recipients: use --limit or --json)");
}
