import { isAbsolute, join } from "node:path";

import type { ChangeAnswer, UpdateInput } from "../client/changes";
import { NotificationClient } from "../client/notification-client";
import { isGuid, isRequestId } from "../notifications/schema";
import type { NotificationStatus } from "../notifications/status";
import { refusal } from "./change-refusal";
import { type CliIo, UsageError, writeLine } from "./cli-io";
import { EXIT, type ExitCode, statusExitCode } from "./exit-codes";
import { readCard } from "./notify-command";
import { updateRecipient } from "./recipient-command";
import { printStatus, waitSeconds } from "./status-command";
import {
  resolveSendTarget,
  resolveWaitStatusEndpoint,
  type TransportFlags,
} from "./transport-options";
import { waitWithProgress } from "./wait-progress";

export interface ChangeFlags extends TransportFlags {
  readonly tenant?: string;
  readonly text?: string;
  readonly format?: "markdown" | "plain";
  readonly card?: string;
  readonly summary?: string;
  readonly notBefore?: string;
  /** `update` of one person's copy only (AAD object id, UPN or Teams user id). */
  readonly recipient?: string;
  readonly correlationId?: string;
  readonly wait?: number | true;
  readonly statusEndpoint?: string;
  readonly json?: boolean;
}

/**
 * `herald update <id>` and `herald recall <id>`: the change sent like a notification (the
 * intake queue, or PATCH / DELETE on the HTTP endpoint), then, with `--wait`, the request's
 * status until every copy shows the new revision (update) or is deleted or cancelled (recall).
 * `herald update <id> --recipient <r>` changes that one person's copy (recipient-command.ts).
 */
export async function change(
  operation: "update" | "recall",
  id: string,
  flags: ChangeFlags,
  io: CliIo,
): Promise<ExitCode> {
  if (!isRequestId(id))
    throw new UsageError(`"${id}" is not a request id (1-128 letters, digits and . _ : @ -)`);
  const tenantId = flags.tenant?.trim();
  if (tenantId === undefined || !isGuid(tenantId))
    throw new UsageError("--tenant <tenantId> is required: the request's tenant (GUID)");
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  if (flags.statusEndpoint !== undefined && flags.wait === undefined)
    throw new UsageError("--status-endpoint applies with --wait only");
  const input = operation === "update" ? await updateFromFlags(flags, cwd) : {};
  const { target, options } = resolveSendTarget(flags, env, cwd);
  if (flags.recipient !== undefined)
    return updateRecipient(id, tenantId, flags.recipient, input, { target, options, flags, io });
  const status =
    flags.wait !== undefined ? resolveWaitStatusEndpoint(target, flags, env) : undefined;
  const client = new NotificationClient(target, {
    ...options,
    ...(status !== undefined && !("endpoint" in target)
      ? {
          statusEndpoint: status.endpoint,
          ...(status.functionKey !== undefined ? { functionKey: status.functionKey } : {}),
        }
      : {}),
    ...io.clientOptions,
  });
  const base = {
    id,
    tenantId,
    ...(flags.correlationId !== undefined ? { correlationId: flags.correlationId.trim() } : {}),
  };
  try {
    let answer: ChangeAnswer;
    try {
      answer =
        operation === "update"
          ? await client.update({ ...base, ...input })
          : await client.recall(base);
    } catch (error) {
      return refusal(error, operation, io);
    }
    if (flags.json !== true || flags.wait === undefined) report(operation, id, answer, flags, io);
    const seconds = waitSeconds(flags.wait);
    if (seconds === undefined) return EXIT.ok;
    const waited = await waitWithProgress(client, id, { seconds, query: { tenantId } }, io);
    return finished(operation, id, waited.status, seconds, flags, io);
  } finally {
    await client.close();
  }
}

async function updateFromFlags(flags: ChangeFlags, cwd: string): Promise<Partial<UpdateInput>> {
  if (flags.recipient !== undefined && flags.notBefore !== undefined)
    throw new UsageError("--not-before applies to the whole request, not with --recipient");
  if (flags.text !== undefined && flags.card !== undefined)
    throw new UsageError("give either --text or --card, not both");
  if (flags.format !== undefined && flags.text === undefined)
    throw new UsageError("--format applies to --text only");
  if (
    flags.text === undefined &&
    flags.card === undefined &&
    flags.summary === undefined &&
    flags.notBefore === undefined
  )
    throw new UsageError("give what changes: --text, --card, --summary or --not-before");
  const message =
    flags.card !== undefined
      ? {
          adaptiveCard: await readCard(
            isAbsolute(flags.card) ? flags.card : join(cwd, flags.card),
            flags.card,
          ),
        }
      : flags.text !== undefined
        ? { text: flags.text, ...(flags.format !== undefined ? { format: flags.format } : {}) }
        : undefined;
  return {
    ...(message !== undefined ? { message } : {}),
    ...(flags.summary !== undefined ? { summary: flags.summary } : {}),
    ...(flags.notBefore !== undefined ? { notBefore: flags.notBefore.trim() } : {}),
  };
}

function report(
  operation: "update" | "recall",
  id: string,
  answer: ChangeAnswer,
  flags: ChangeFlags,
  io: CliIo,
): void {
  if (flags.json === true) {
    writeLine(io.stdout, JSON.stringify({ id, operation, ...answer }));
    return;
  }
  const done = operation === "update" ? "Updated" : "Recalled";
  writeLine(
    io.stdout,
    answer.kind === "accepted"
      ? `${done} ${id}${operation === "update" ? ` (revision ${answer.revision})` : ""}`
      : `Queued the ${operation} of ${id}; Herald applies it when it takes it from the queue`,
  );
}

/**
 * After `--wait`: 0 when every copy shows the latest (update) or the request is recalled; 5
 * when final but some copy was not reached; 6 when the wait ran out.
 */
function finished(
  operation: "update" | "recall",
  id: string,
  status: NotificationStatus | undefined,
  seconds: number,
  flags: ChangeFlags,
  io: CliIo,
): ExitCode {
  if (status === undefined) {
    writeLine(io.stderr, `herald: no notification request ${id} after ${seconds} s`);
    return EXIT.failure;
  }
  if (flags.json === true) writeLine(io.stdout, JSON.stringify(status, null, 2));
  else printStatus(status, io);
  if (!status.final) {
    writeLine(io.stderr, `herald: ${id} is still ${status.state} after ${seconds} s (not final)`);
    return EXIT.notFinal;
  }
  if (operation === "recall") return status.state === "recalled" ? EXIT.ok : EXIT.notDelivered;
  const code = statusExitCode(status);
  if (code === EXIT.notDelivered)
    writeLine(io.stderr, `herald: ${id} is ${status.state}: not every copy shows the update`);
  return code;
}
