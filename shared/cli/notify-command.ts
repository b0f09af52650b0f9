import { readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";

import { SingleBar } from "cli-progress";

import { readBulkFile } from "../client/bulk-file";
import {
  formatIssue,
  NotificationSendError,
  RequestConflictError,
  type RequestIssue,
  RequestValidationError,
} from "../client/client-errors";
import { NotificationClient } from "../client/notification-client";
import type { NotificationRequestInput } from "../client/prepare-request";
import {
  ADAPTIVE_CARD_CONTENT_TYPE,
  type NotificationRequest,
  type Recipient,
} from "../notifications/schema";
import { type CliIo, UsageError, writeLine } from "./cli-io";
import { EXIT, type ExitCode } from "./exit-codes";
import { waitAfterSend } from "./notify-wait";
import { classifyRecipient } from "./recipients";
import {
  resolveSendTarget,
  resolveWaitStatusEndpoint,
  type TransportFlags,
} from "./transport-options";

export interface NotifyFlags extends TransportFlags {
  readonly tenant?: string;
  readonly to?: string[];
  readonly team?: string[];
  readonly group?: string[];
  readonly includeGuests?: boolean;
  readonly text?: string;
  readonly card?: string;
  readonly format?: "markdown" | "plain";
  readonly summary?: string;
  readonly notBefore?: string;
  readonly id?: string;
  readonly correlationId?: string;
  readonly file?: string;
  readonly skipInvalid?: boolean;
  readonly dryRun?: boolean;
  readonly json?: boolean;
  /** Seconds to wait for the request to be final (`true`: the default wait). */
  readonly wait?: number | true;
}

/** Invalid lines listed in full before the rest are counted. */
const LISTED_LINES = 50;

function resolvePath(cwd: string, path: string): string {
  return isAbsolute(path) ? path : join(cwd, path);
}

/** `herald notify`: one request from flags, or a JSONL bulk file. */
export async function notify(given: NotifyFlags, io: CliIo): Promise<ExitCode> {
  const flags = { ...given, to: given.to ?? [], team: given.team ?? [], group: given.group ?? [] };
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  if (flags.wait !== undefined && flags.file !== undefined) {
    throw new UsageError(
      "--wait applies to one notification; for a bulk file, wait on each id with: herald status <id> --tenant <tenantId> --wait",
    );
  }
  if (flags.statusEndpoint !== undefined && flags.wait === undefined) {
    throw new UsageError("--status-endpoint applies with --wait only");
  }
  const { target, options } = resolveSendTarget(flags, env, cwd);
  const status =
    flags.wait !== undefined ? resolveWaitStatusEndpoint(target, flags, env) : undefined;
  const statusOptions =
    status !== undefined && !("endpoint" in target)
      ? {
          statusEndpoint: status.endpoint,
          ...(status.functionKey !== undefined ? { functionKey: status.functionKey } : {}),
        }
      : {};
  const client = new NotificationClient(target, {
    ...options,
    ...statusOptions,
    ...io.clientOptions,
  });
  try {
    return flags.file !== undefined
      ? await notifyFromFile(client, flags, flags.file, io, cwd)
      : await notifyOne(client, flags, io, cwd, status);
  } finally {
    await client.close();
  }
}

type Flags = NotifyFlags & {
  readonly to: string[];
  readonly team: string[];
  readonly group: string[];
};

async function notifyOne(
  client: NotificationClient,
  flags: Flags,
  io: CliIo,
  cwd: string,
  status: { endpoint: string; functionKey?: string } | undefined,
): Promise<ExitCode> {
  const { input, sources } = await requestFromFlags(flags, cwd);
  const [request] = validated(client, input, sources, io);
  if (request === undefined) return EXIT.usage;
  if (flags.dryRun === true) {
    writeLine(io.stdout, JSON.stringify(request, null, 2));
    writeLine(io.stderr, "Valid; nothing sent (--dry-run).");
    return EXIT.ok;
  }
  const send = (via: NotificationClient) => async (): Promise<ExitCode | undefined> => {
    try {
      await via.send(request);
      return undefined;
    } catch (error) {
      if (!(error instanceof RequestConflictError)) throw error;
      writeLine(io.stderr, `herald: ${error.message}`);
      if (flags.json === true) {
        writeLine(io.stdout, JSON.stringify({ ids: [], conflicts: [request.id], skipped: [] }));
      }
      return EXIT.conflict;
    }
  };
  if (flags.wait !== undefined && status !== undefined) {
    const http = new NotificationClient(
      {
        endpoint: status.endpoint,
        ...(status.functionKey !== undefined ? { functionKey: status.functionKey } : {}),
      },
      io.clientOptions,
    );
    return waitAfterSend(
      client,
      request,
      {
        wait: flags.wait,
        json: flags.json,
        statusEndpoint: status.endpoint,
        send: send(client),
        submitOverHttp: send(http),
      },
      io,
    );
  }
  const refused = await send(client)();
  if (refused !== undefined) return refused;
  const id = request.id;
  if (flags.json === true) writeLine(io.stdout, JSON.stringify({ ids: [id], skipped: [] }));
  else writeLine(io.stdout, id);
  writeLine(io.stderr, sentLine(client, [id], request.tenantId));
  return EXIT.ok;
}

/** The one request, validated; undefined (and the fields reported) when it is invalid. */
function validated(
  client: NotificationClient,
  input: NotificationRequestInput,
  sources: RecipientSources,
  io: CliIo,
): NotificationRequest[] {
  try {
    return client.validateMany([input]);
  } catch (error) {
    if (!(error instanceof RequestValidationError)) throw error;
    writeLine(io.stderr, "herald: the notification is invalid, nothing was sent:");
    for (const issue of error.issues) writeLine(io.stderr, `  ${describeField(issue, sources)}`);
    return [];
  }
}

/**
 * What happened to sent requests, truthfully per transport: Herald answered over HTTP (accepted
 * and queued); a queue only holds them until Herald takes them, and may still refuse them then.
 */
export function sentLine(
  client: NotificationClient,
  ids: readonly string[],
  tenantId: string | undefined,
): string {
  const one = ids.length === 1 ? ids[0]! : undefined;
  const what = one !== undefined ? `notification ${one}` : `${ids.length} notifications`;
  const check = `herald status ${one ?? "<id>"}${tenantId !== undefined ? ` --tenant ${tenantId}` : ""} --wait`;
  if (client.confirmsAcceptance) {
    return `Herald accepted ${what} (${client.description}) and queued ${one !== undefined ? "it" : "them"} for delivery. See what happened with: ${check}`;
  }
  const local = client.description.startsWith("local queue") ? " (npm start drains it)" : "";
  return (
    `Sent ${what} to ${client.description}${local}; not accepted by Herald yet: Herald checks ${ids.length === 1 ? "it" : "each"} when it takes ${ids.length === 1 ? "it" : "them"} from the queue, ` +
    `and refuses an invalid request or an id already used in the tenant with different content. See what happened with: ${check}`
  );
}

async function notifyFromFile(
  client: NotificationClient,
  flags: Flags,
  file: string,
  io: CliIo,
  cwd: string,
): Promise<ExitCode> {
  const clashing = (
    [
      ["--to", flags.to.length > 0],
      ["--team", flags.team.length > 0],
      ["--group", flags.group.length > 0],
      ["--include-guests", flags.includeGuests === true],
      ["--text", flags.text !== undefined],
      ["--card", flags.card !== undefined],
      ["--format", flags.format !== undefined],
      ["--summary", flags.summary !== undefined],
      ["--not-before", flags.notBefore !== undefined],
      ["--id", flags.id !== undefined],
      ["--correlation-id", flags.correlationId !== undefined],
    ] as const
  )
    .filter(([, given]) => given)
    .map(([name]) => name);
  if (clashing.length > 0) {
    throw new UsageError(
      `--file takes whole requests, one per line; ${clashing.join(", ")} cannot be combined with it (only --tenant, as the default tenant)`,
    );
  }
  let bulk;
  try {
    bulk = await readBulkFile(resolvePath(cwd, file), {
      ...(flags.tenant !== undefined ? { defaults: { tenantId: flags.tenant } } : {}),
      ...(io.clientOptions?.generateId !== undefined
        ? { generateId: io.clientOptions.generateId }
        : {}),
    });
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  const { valid, invalid } = bulk;
  const skipped = invalid.map((bad) => ({
    line: bad.line,
    errors: bad.issues.map(({ path, message }) => ({ path, message })),
  }));

  if (invalid.length > 0) {
    const sending = flags.skipInvalid === true && valid.length > 0;
    writeLine(
      io.stderr,
      `herald: ${invalid.length} invalid line${invalid.length === 1 ? "" : "s"} in ${file}${sending ? " (skipped: --skip-invalid)" : ""}:`,
    );
    for (const bad of invalid.slice(0, LISTED_LINES)) {
      for (const issue of bad.issues) writeLine(io.stderr, `  ${formatIssue(issue)}`);
    }
    if (invalid.length > LISTED_LINES) {
      writeLine(io.stderr, `  … and ${invalid.length - LISTED_LINES} more invalid lines`);
    }
    if (!sending) {
      writeLine(
        io.stderr,
        valid.length === 0
          ? "Nothing was sent: no line is valid."
          : `Nothing was sent. Fix the lines, or pass --skip-invalid to send the ${valid.length} valid one${valid.length === 1 ? "" : "s"}.`,
      );
      if (flags.json === true) writeLine(io.stdout, JSON.stringify({ ids: [], skipped }));
      return EXIT.usage;
    }
  } else if (valid.length === 0) {
    throw new UsageError(`${file} holds no requests (one JSON request per line)`);
  }

  const requests = valid.map((v) => v.request);
  if (flags.dryRun === true) {
    writeLine(
      io.stderr,
      `${valid.length} valid request${valid.length === 1 ? "" : "s"}; nothing sent (--dry-run).`,
    );
    if (flags.json === true) writeLine(io.stdout, JSON.stringify({ ids: [], skipped }));
    return invalid.length > 0 ? EXIT.partial : EXIT.ok;
  }

  const bar =
    io.stderr.isTTY === true && requests.length > 1
      ? new SingleBar({
          // cli-progress wants a NodeJS stream; it only calls write() and reads isTTY/columns.
          stream: io.stderr as unknown as NodeJS.WritableStream,
          format: "Sending |{bar}| {value}/{total} notifications",
          hideCursor: true,
          clearOnComplete: false,
        })
      : undefined;
  bar?.start(requests.length, 0);
  try {
    await client.sendMany(requests, { onProgress: (done) => bar?.update(done) });
  } catch (error) {
    bar?.stop();
    if (error instanceof RequestConflictError) {
      return reportConflicts(error, valid, skipped, { flags, client, io });
    }
    if (error instanceof NotificationSendError) {
      const unsent = new Set(error.unsentIds);
      const lines = valid.filter((v) => unsent.has(v.request.id)).map((v) => v.line);
      const refused = new Set(error.conflictIds);
      const conflictLines = valid.filter((v) => refused.has(v.request.id)).map((v) => v.line);
      writeLine(io.stderr, `herald: ${error.message}`);
      writeLine(
        io.stderr,
        `Sent ${error.sentIds.length} of ${requests.length}; not confirmed: line${lines.length === 1 ? "" : "s"} ${lineRanges(lines)}. Sending the same file again is safe only where lines carry their own "id".`,
      );
      if (conflictLines.length > 0) {
        writeLine(
          io.stderr,
          `Refused as conflicts (id already used in the tenant with different content; nothing of them was sent): line${conflictLines.length === 1 ? "" : "s"} ${lineRanges(conflictLines)}.`,
        );
      }
      if (flags.json === true) {
        writeLine(
          io.stdout,
          JSON.stringify({
            ids: error.sentIds,
            unsentLines: lines,
            conflictLines,
            skipped,
          }),
        );
      } else {
        for (const id of error.sentIds) writeLine(io.stdout, id);
      }
      return EXIT.failure;
    }
    throw error;
  }
  bar?.stop();

  if (flags.json === true) {
    writeLine(io.stdout, JSON.stringify({ ids: requests.map((r) => r.id), skipped }));
  } else {
    for (const request of requests) writeLine(io.stdout, request.id);
  }
  const tenants = new Set(requests.map((r) => r.tenantId));
  writeLine(
    io.stderr,
    sentLine(
      client,
      requests.map((r) => r.id),
      tenants.size === 1 ? requests[0]!.tenantId : undefined,
    ) +
      (invalid.length > 0
        ? ` Skipped ${invalid.length} invalid line${invalid.length === 1 ? "" : "s"}: ${lineRanges(invalid.map((i) => i.line))}.`
        : ""),
  );
  return invalid.length > 0 ? EXIT.partial : EXIT.ok;
}

/** Every other line was sent; the refused ones are named by line, and the exit code is 4. */
function reportConflicts(
  error: RequestConflictError,
  valid: readonly { line: number; request: NotificationRequest }[],
  skipped: readonly unknown[],
  { flags, client, io }: { flags: Flags; client: NotificationClient; io: CliIo },
): ExitCode {
  const refused = new Set(error.conflictIds);
  const conflictLines = valid.filter((v) => refused.has(v.request.id)).map((v) => v.line);
  writeLine(io.stderr, `herald: ${error.message}`);
  writeLine(
    io.stderr,
    `Refused as conflicts, nothing of them sent: line${conflictLines.length === 1 ? "" : "s"} ${lineRanges(conflictLines)}.`,
  );
  if (error.sentIds.length > 0) {
    writeLine(io.stderr, sentLine(client, error.sentIds, flags.tenant));
  }
  if (flags.json === true) {
    writeLine(io.stdout, JSON.stringify({ ids: error.sentIds, conflictLines, skipped }));
  } else {
    for (const id of error.sentIds) writeLine(io.stdout, id);
  }
  return EXIT.conflict;
}

/** Which flag each recipient came from, to name it in errors. */
type RecipientSources = string[];

async function requestFromFlags(
  flags: Flags,
  cwd: string,
): Promise<{ input: NotificationRequestInput; sources: RecipientSources }> {
  const missing: string[] = [];
  if (flags.tenant === undefined) missing.push("--tenant <tenantId>");
  if (flags.to.length === 0 && flags.team.length === 0 && flags.group.length === 0)
    missing.push("--to <recipient>, --team <teamId> or --group <groupId>");
  if (flags.text === undefined && flags.card === undefined)
    missing.push("--text <text> or --card <file>");
  if (missing.length > 0)
    throw new UsageError(`missing ${missing.join(", ")} (or --file <requests.jsonl>)`);
  if (flags.text !== undefined && flags.card !== undefined) {
    throw new UsageError("give either --text or --card, not both");
  }
  if (flags.format !== undefined && flags.text === undefined) {
    throw new UsageError("--format applies to --text only");
  }

  const recipients: Recipient[] = [];
  const sources: RecipientSources = [];
  for (const value of flags.to) {
    const recipient = classifyRecipient(value);
    if (recipient === undefined) {
      throw new UsageError(
        `--to ${value}: not a recognisable recipient; use a UPN (alice@contoso.com), an Entra object id (GUID) or a Teams user id (29:…)`,
      );
    }
    recipients.push(recipient);
    sources.push(`--to ${value}`);
  }
  for (const value of flags.team) {
    recipients.push({ teamId: value.trim() });
    sources.push(`--team ${value}`);
  }
  for (const value of flags.group) {
    recipients.push({ groupId: value.trim() });
    sources.push(`--group ${value}`);
  }
  if (flags.includeGuests === true && flags.group.length === 0)
    throw new UsageError("--include-guests applies to --group only");

  const message: NotificationRequestInput["message"] =
    flags.card !== undefined
      ? { adaptiveCard: await readCard(resolvePath(cwd, flags.card), flags.card) }
      : {
          text: flags.text ?? "",
          ...(flags.format !== undefined ? { format: flags.format } : {}),
        };
  const input: NotificationRequestInput = {
    tenantId: flags.tenant!.trim(),
    recipients,
    message,
    ...(flags.summary !== undefined ? { summary: flags.summary } : {}),
    ...(flags.includeGuests === true ? { includeGuests: true } : {}),
    ...(flags.notBefore !== undefined ? { notBefore: flags.notBefore.trim() } : {}),
    ...(flags.id !== undefined ? { id: flags.id.trim() } : {}),
    ...(flags.correlationId !== undefined ? { correlationId: flags.correlationId.trim() } : {}),
  };
  return { input, sources };
}

/** The card JSON; a Bot Framework attachment (`{contentType, content}`) is unwrapped. */
export async function readCard(
  path: string,
  shown: string,
): Promise<NonNullable<NotificationRequestInput["message"]["adaptiveCard"]>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, "utf8")) as unknown;
  } catch (error) {
    throw new UsageError(`--card ${shown}: ${(error as Error).message}`);
  }
  const attachment = value as { contentType?: unknown; content?: unknown } | null;
  if (attachment?.contentType === ADAPTIVE_CARD_CONTENT_TYPE && attachment.content !== undefined) {
    value = attachment.content;
  }
  // The schema checks the card's shape and names any bad field.
  return value as NonNullable<NotificationRequestInput["message"]["adaptiveCard"]>;
}

const FLAG_OF_FIELD: readonly [RegExp, string][] = [
  [/^tenantId\b/, "--tenant"],
  [/^message\.text\b/, "--text"],
  [/^message\.format\b/, "--format"],
  [/^message\.adaptiveCard\b/, "--card"],
  [/^message$/, "--text/--card"],
  [/^summary\b/, "--summary"],
  [/^notBefore\b/, "--not-before"],
  [/^id$/, "--id"],
  [/^correlationId\b/, "--correlation-id"],
];

/** `tenantId (--tenant): must be a GUID`; `recipients.1 (--to bob@x): …`. */
function describeField(issue: RequestIssue, sources: RecipientSources): string {
  const recipient = /^recipients\.(\d+)/.exec(issue.path);
  const flag =
    recipient !== null
      ? sources[Number(recipient[1])]
      : FLAG_OF_FIELD.find(([pattern]) => pattern.test(issue.path))?.[1];
  return flag !== undefined
    ? `${issue.path} (${flag}): ${issue.message}`
    : `${issue.path}: ${issue.message}`;
}

/** `3-5, 9, 12-14`. */
export function lineRanges(lines: readonly number[]): string {
  const sorted = [...lines].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j += 1;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(", ");
}
