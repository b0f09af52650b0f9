import { HttpResponseError } from "../client/client-errors";
import type { StatusOptions } from "../client/http-transport";
import { NotificationClient } from "../client/notification-client";
import { isGuid, isRequestId, type Recipient } from "../notifications/schema";
import {
  type NotificationStatus,
  RECIPIENT_STATES as STATES,
  type RecipientState,
  type RecipientStatus,
} from "../notifications/status";
import { type CliIo, UsageError, writeLine } from "./cli-io";
import { EXIT, type ExitCode, isAllDelivered, statusExitCode } from "./exit-codes";
import { resolveStatusEndpoint, type TransportFlags } from "./transport-options";
import { DEFAULT_WAIT_SECONDS, waitWithProgress } from "./wait-progress";

export interface StatusFlags extends Pick<TransportFlags, "endpoint" | "functionKey"> {
  readonly tenant?: string;
  readonly json?: boolean;
  readonly state?: RecipientState;
  readonly limit?: number;
  /** Seconds to wait for the request to be final (`true`: the default wait). */
  readonly wait?: number | true;
}

export const RECIPIENT_STATES: readonly RecipientState[] = STATES;

export function waitSeconds(wait: number | true | undefined): number | undefined {
  return wait === undefined ? undefined : wait === true ? DEFAULT_WAIT_SECONDS : wait;
}

/** `herald status <id>`: the request's per-recipient states, from the HTTP endpoint. */
export async function status(id: string, flags: StatusFlags, io: CliIo): Promise<ExitCode> {
  if (!isRequestId(id)) {
    throw new UsageError(`"${id}" is not a request id (1-128 letters, digits and . _ : @ -)`);
  }
  if (flags.tenant !== undefined && !isGuid(flags.tenant.trim())) {
    throw new UsageError(`--tenant ${flags.tenant}: must be a GUID (the Microsoft 365 tenant id)`);
  }
  const { endpoint, functionKey } = resolveStatusEndpoint(flags, io.env ?? process.env);
  const client = new NotificationClient(
    { endpoint, ...(functionKey !== undefined ? { functionKey } : {}) },
    io.clientOptions,
  );
  return showStatus(client, id, { ...flags, endpoint }, io);
}

/**
 * Reads (or waits for) the request's status, prints it and answers the exit code: shared by
 * `status` and `notify --wait`.
 */
export async function showStatus(
  client: NotificationClient,
  id: string,
  flags: Omit<StatusFlags, "endpoint"> & { readonly endpoint: string },
  io: CliIo,
): Promise<ExitCode> {
  const query: StatusOptions = {
    ...(flags.tenant !== undefined ? { tenantId: flags.tenant.trim() } : {}),
    ...(flags.state !== undefined ? { state: flags.state } : {}),
    ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
  };
  const seconds = waitSeconds(flags.wait);
  try {
    const found =
      seconds === undefined
        ? await client.status(id, query)
        : (await waitWithProgress(client, id, { seconds, query }, io)).status;
    return reportStatus(found, { ...flags, id, seconds }, io);
  } catch (error) {
    if (isTenantRequired(error)) {
      throw new UsageError(`several tenants use the id ${id}: name one with --tenant <tenantId>`);
    }
    throw error;
  }
}

/** The endpoint's 400 for an id several tenants use, asked without a tenant. */
function isTenantRequired(error: unknown): boolean {
  if (!(error instanceof HttpResponseError) || error.statusCode !== 400) return false;
  const errors = (error.body as { errors?: unknown } | undefined)?.errors;
  return (
    Array.isArray(errors) &&
    errors.some((e: unknown) => (e as { path?: unknown } | null)?.path === "tenantId")
  );
}

/** Prints a status (or that there is none) and answers its exit code. */
export function reportStatus(
  found: NotificationStatus | undefined,
  flags: {
    readonly id: string;
    readonly endpoint: string;
    readonly tenant?: string | undefined;
    readonly seconds?: number | undefined;
    readonly json?: boolean | undefined;
  },
  io: CliIo,
): ExitCode {
  const { id, seconds } = flags;
  if (found === undefined) {
    writeLine(
      io.stderr,
      `herald: ${flags.endpoint} has no notification request ${id}${flags.tenant !== undefined ? ` in tenant ${flags.tenant.trim()}` : ""}${seconds !== undefined ? ` after ${seconds} s` : ""} (not taken from the queue yet, or a different endpoint, tenant or id)`,
    );
    return EXIT.failure;
  }
  if (flags.json === true) writeLine(io.stdout, JSON.stringify(found, null, 2));
  else printStatus(found, io);
  const code = statusExitCode(found);
  if (code === EXIT.notFinal) {
    writeLine(
      io.stderr,
      seconds !== undefined
        ? `herald: ${id} is still ${found.state} after ${seconds} s (not final)`
        : `herald: ${id} is ${found.state}, not final yet; wait for it with: herald status ${id}${found.tenantId !== undefined ? ` --tenant ${found.tenantId}` : ""} --wait`,
    );
  } else if (code === EXIT.notDelivered) {
    writeLine(io.stderr, `herald: ${id} is ${found.state}: ${notDeliveredReason(found)}`);
  }
  return code;
}

function notDeliveredReason(status: NotificationStatus): string {
  const c = status.counts;
  if (status.state === "rejected") return "the request was rejected as invalid; nothing was sent";
  const missing = (["unreachable", "failed", "rejected"] as const)
    .filter((s) => c[s] > 0)
    .map((s) => `${c[s]} ${s}`);
  if (c.total === 0) {
    return status.state === "failed"
      ? "the request failed before its recipients were recorded; nobody was sent anything"
      : "it had no recipients; nobody was sent anything";
  }
  return `not everyone was reached (${missing.join(", ") || `${c.sent} of ${c.total} sent`})`;
}

function recipientName(r: Recipient | undefined): string {
  return (
    r?.userPrincipalName ??
    r?.aadObjectId ??
    r?.teamsUserId ??
    r?.teamId ??
    (r?.groupId !== undefined ? `group ${r.groupId}` : "?")
  );
}

/** A group member named by AAD id reads as the person Herald knows: UPN (display name). */
function recipientText(status: RecipientStatus): string {
  if (status.recipient.aadObjectId === undefined) return recipientName(status.recipient);
  const { userPrincipalName: upn, displayName: name } = status;
  if (upn !== undefined) return name !== undefined ? `${upn} (${name})` : upn;
  return name !== undefined
    ? `${name} (${status.recipient.aadObjectId})`
    : recipientName(status.recipient);
}

const STEP_TEXT = {
  installing: "installing the app for them",
  "waiting-for-chat": "app installed, waiting for Teams to open the chat",
} as const;

function detailOf(r: RecipientStatus): string {
  if (r.state === "duplicate") return `same person as ${recipientName(r.duplicateOf)}`;
  const step = r.step !== undefined ? STEP_TEXT[r.step] : undefined;
  const parts = [
    step,
    r.lastError,
    r.state === "pending" && r.nextAttemptAt !== undefined
      ? `next try ${r.nextAttemptAt}`
      : undefined,
  ].filter((p) => p !== undefined);
  // A final recipient's error says it all; a pending one's step and next try say where it stands.
  if (r.state === "pending") return parts.join("; ");
  const clicked = (r.actions ?? []).map((a) => `${a.verb} ${a.at}`);
  const detail = r.readAt !== undefined ? `read ${r.readAt}` : (r.lastError ?? "");
  return clicked.length > 0
    ? [detail, `clicked ${clicked.join(", ")}`].filter(Boolean).join("; ")
    : detail;
}

export function printStatus(status: NotificationStatus, io: CliIo): void {
  const out = io.stdout;
  writeLine(
    out,
    `${status.id}: ${status.state}${status.final ? "" : " (not final)"}${status.notBefore !== undefined ? ` (not before ${status.notBefore})` : ""}`,
  );
  const c = status.counts;
  const expected =
    status.expectedRecipients !== undefined && status.expectedRecipients !== c.total
      ? ` (of ${status.expectedRecipients} expected)`
      : "";
  writeLine(
    out,
    `  ${c.total} recipient${c.total === 1 ? "" : "s"}${expected}: ${c.sent} sent, ${c.duplicate} duplicate, ${c.pending} pending, ${c.unreachable} unreachable, ${c.failed} failed, ${c.rejected} rejected${c.read > 0 ? `; ${c.read} read` : ""}`,
  );
  if (status.final) {
    writeLine(
      out,
      isAllDelivered(status)
        ? "  every recipient was sent the notification"
        : "  not everyone was reached",
    );
  }
  if (status.conflicts !== undefined) {
    const { count, lastAt, lastSource } = status.conflicts;
    writeLine(
      out,
      `  conflicts: ${count} submission${count === 1 ? "" : "s"} of this id with different content refused, nothing of them sent${lastAt !== undefined ? ` (last ${lastAt}${lastSource !== undefined ? ` via ${lastSource}` : ""})` : ""}`,
    );
  }
  for (const error of status.errors ?? [])
    writeLine(out, `  rejected: ${error.path}: ${error.message}`);
  if (status.lastError !== undefined) writeLine(out, `  last error: ${status.lastError}`);
  const width = Math.min(60, Math.max(0, ...status.recipients.map((r) => recipientText(r).length)));
  for (const r of status.recipients) {
    const detail = detailOf(r);
    writeLine(
      out,
      `  ${r.state.padEnd(11)} ${recipientText(r).padEnd(width)}  attempts ${r.attempts}${detail !== "" ? `  ${detail}` : ""}`,
    );
  }
  if (status.recipientsTruncated) writeLine(out, "  … (more recipients: use --limit or --json)");
}
