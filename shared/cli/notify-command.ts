import { readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";

import { SingleBar } from "cli-progress";

import { readBulkFile } from "../client/bulk-file";
import {
  formatIssue,
  NotificationSendError,
  type RequestIssue,
  RequestValidationError,
} from "../client/client-errors";
import { NotificationClient } from "../client/notification-client";
import type { NotificationRequestInput } from "../client/prepare-request";
import { ADAPTIVE_CARD_CONTENT_TYPE, type Recipient } from "../notifications/schema";
import { type CliIo, UsageError, writeLine } from "./cli-io";
import { EXIT, type ExitCode } from "./exit-codes";
import { classifyRecipient } from "./recipients";
import { resolveSendTarget, type TransportFlags } from "./transport-options";

export interface NotifyFlags extends TransportFlags {
  readonly tenant?: string;
  readonly to?: string[];
  readonly team?: string[];
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
}

/** Invalid lines listed in full before the rest are counted. */
const LISTED_LINES = 50;

function resolvePath(cwd: string, path: string): string {
  return isAbsolute(path) ? path : join(cwd, path);
}

/** `herald notify`: one request from flags, or a JSONL bulk file. */
export async function notify(given: NotifyFlags, io: CliIo): Promise<ExitCode> {
  const flags = { ...given, to: given.to ?? [], team: given.team ?? [] };
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  const { target, options } = resolveSendTarget(flags, env, cwd);
  const client = new NotificationClient(target, { ...options, ...io.clientOptions });
  try {
    return flags.file !== undefined
      ? await notifyFromFile(client, flags, flags.file, io, cwd)
      : await notifyOne(client, flags, io, cwd);
  } finally {
    await client.close();
  }
}

type Flags = NotifyFlags & { readonly to: string[]; readonly team: string[] };

async function notifyOne(
  client: NotificationClient,
  flags: Flags,
  io: CliIo,
  cwd: string,
): Promise<ExitCode> {
  const { input, sources } = await requestFromFlags(flags, cwd);
  let id: string;
  try {
    const [request] = client.validateMany([input]);
    if (flags.dryRun === true) {
      writeLine(io.stdout, JSON.stringify(request, null, 2));
      writeLine(io.stderr, "Valid; nothing sent (--dry-run).");
      return EXIT.ok;
    }
    id = await client.send(request!);
  } catch (error) {
    if (error instanceof RequestValidationError) {
      writeLine(io.stderr, "herald: the notification is invalid, nothing was sent:");
      for (const issue of error.issues) writeLine(io.stderr, `  ${describeField(issue, sources)}`);
      return EXIT.usage;
    }
    throw error;
  }
  if (flags.json === true) writeLine(io.stdout, JSON.stringify({ ids: [id], skipped: [] }));
  else writeLine(io.stdout, id);
  writeLine(io.stderr, `Queued notification ${id} on ${client.description}.${nextStep(client)}`);
  return EXIT.ok;
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
    await client.sendMany(requests, { onProgress: (sent) => bar?.update(sent) });
  } catch (error) {
    bar?.stop();
    if (error instanceof NotificationSendError) {
      const unsent = new Set(error.unsentIds);
      const lines = valid.filter((v) => unsent.has(v.request.id)).map((v) => v.line);
      writeLine(io.stderr, `herald: ${error.message}`);
      writeLine(
        io.stderr,
        `Sent ${error.sentIds.length} of ${requests.length}; not confirmed: line${lines.length === 1 ? "" : "s"} ${lineRanges(lines)}. Sending the same file again is safe only where lines carry their own "id".`,
      );
      if (flags.json === true) {
        writeLine(io.stdout, JSON.stringify({ ids: error.sentIds, unsentLines: lines, skipped }));
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
  writeLine(
    io.stderr,
    `Queued ${requests.length} notification${requests.length === 1 ? "" : "s"} on ${client.description}.` +
      (invalid.length > 0
        ? ` Skipped ${invalid.length} invalid line${invalid.length === 1 ? "" : "s"}: ${lineRanges(invalid.map((i) => i.line))}.`
        : "") +
      nextStep(client),
  );
  return invalid.length > 0 ? EXIT.partial : EXIT.ok;
}

/** Which flag each recipient came from, to name it in errors. */
type RecipientSources = string[];

async function requestFromFlags(
  flags: Flags,
  cwd: string,
): Promise<{ input: NotificationRequestInput; sources: RecipientSources }> {
  const missing: string[] = [];
  if (flags.tenant === undefined) missing.push("--tenant <tenantId>");
  if (flags.to.length === 0 && flags.team.length === 0)
    missing.push("--to <recipient> or --team <teamId>");
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
    ...(flags.notBefore !== undefined ? { notBefore: flags.notBefore.trim() } : {}),
    ...(flags.id !== undefined ? { id: flags.id.trim() } : {}),
    ...(flags.correlationId !== undefined ? { correlationId: flags.correlationId.trim() } : {}),
  };
  return { input, sources };
}

/** The card JSON; a Bot Framework attachment (`{contentType, content}`) is unwrapped. */
async function readCard(
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

function nextStep(client: NotificationClient): string {
  return client.description.startsWith("local queue")
    ? " npm start delivers from there; see what happened with: herald status <id>"
    : " See what happened with: herald status <id>";
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
