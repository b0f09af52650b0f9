import { NotificationClient } from "../client/notification-client";
import { TERMINAL_TYPES } from "../events/event-types";
import type { CloudEvent } from "../model/cloud-event";
import { isGuid, isRequestId } from "../notifications/schema";
import { type CliIo, UsageError, writeLine } from "./cli-io";
import { EXIT, type ExitCode } from "./exit-codes";
import { waitSeconds } from "./status-command";
import { resolveStatusEndpoint, type TransportFlags } from "./transport-options";

export interface EventsFlags extends Pick<TransportFlags, "endpoint" | "functionKey"> {
  readonly tenant?: string;
  /** Follow until the request is final (`true`: the default wait), in seconds. */
  readonly follow?: number | true;
  readonly after?: string;
  readonly json?: boolean;
}

/**
 * `herald events <id> --tenant <t>`: the request's events in order, one line each (one JSON line
 * each with `--json`); `--follow` prints them as they happen until the request is final. Exits as
 * `herald status` does, from the request's final event: 0 everyone reached, 5 not, 6 not final.
 */
export async function events(id: string, flags: EventsFlags, io: CliIo): Promise<ExitCode> {
  if (!isRequestId(id))
    throw new UsageError(`"${id}" is not a request id (1-128 letters, digits and . _ : @ -)`);
  const tenant = flags.tenant?.trim();
  if (tenant === undefined || !isGuid(tenant))
    throw new UsageError("--tenant <tenantId> is required: the request's tenant (a GUID)");
  const { endpoint, functionKey } = resolveStatusEndpoint(flags, io.env ?? process.env);
  const client = new NotificationClient(
    { endpoint, ...(functionKey !== undefined ? { functionKey } : {}) },
    io.clientOptions,
  );
  const print = (event: CloudEvent) =>
    writeLine(io.stdout, flags.json === true ? JSON.stringify(event) : eventLine(event));
  let terminal: CloudEvent | undefined;
  const seconds = waitSeconds(flags.follow);
  if (seconds === undefined) {
    const found = await allEvents(client, id, tenant, flags.after);
    if (found === undefined) {
      writeLine(
        io.stderr,
        `herald: ${endpoint} has no notification request ${id} in tenant ${tenant} (not taken from the queue yet, or a different endpoint, tenant or id)`,
      );
      return EXIT.failure;
    }
    for (const event of found) {
      print(event);
      if (TERMINAL_TYPES.has(event.type)) terminal = event;
    }
  } else {
    for await (const event of client.followEvents(id, tenant, {
      ...(flags.after !== undefined ? { after: flags.after } : {}),
      timeoutMs: seconds * 1000,
      ...(io.sleep !== undefined ? { sleep: io.sleep } : {}),
      ...(io.now !== undefined ? { now: io.now } : {}),
    })) {
      print(event);
      if (TERMINAL_TYPES.has(event.type)) terminal = event;
    }
  }
  return exitOf(terminal, id, seconds, io);
}

/** Every page, de-duplicated by id (a page may start over when an event was recorded late). */
async function allEvents(
  client: NotificationClient,
  id: string,
  tenantId: string,
  after: string | undefined,
): Promise<CloudEvent[] | undefined> {
  const seen = new Map<string, CloudEvent>();
  let cursor = after;
  for (;;) {
    const page = await client.events(id, tenantId, cursor !== undefined ? { after: cursor } : {});
    if (page === undefined) return seen.size === 0 ? undefined : [...seen.values()];
    for (const event of page.events) if (!seen.has(event.id)) seen.set(event.id, event);
    if (page.events.length === 0 || page.next === cursor) return [...seen.values()];
    cursor = page.next;
  }
}

function exitOf(
  terminal: CloudEvent | undefined,
  id: string,
  seconds: number | undefined,
  io: CliIo,
): ExitCode {
  if (terminal === undefined) {
    writeLine(
      io.stderr,
      seconds !== undefined
        ? `herald: ${id} is not final after ${seconds} s`
        : `herald: ${id} is not final yet; follow it with --follow`,
    );
    return EXIT.notFinal;
  }
  const data = terminal.data as {
    state?: string;
    counts?: { total?: number; sent?: number; duplicate?: number };
  };
  const c = data.counts ?? {};
  const everyone =
    terminal.type === "herald.notification.completed" &&
    data.state === "completed" &&
    (c.total ?? 0) > 0 &&
    (c.sent ?? 0) + (c.duplicate ?? 0) === c.total;
  if (everyone) return EXIT.ok;
  writeLine(
    io.stderr,
    terminal.type === "herald.notification.rejected"
      ? `herald: ${id} was rejected as invalid; nothing was sent`
      : `herald: ${id} is final: not everyone was reached`,
  );
  return EXIT.notDelivered;
}

/** `time  type  recipient  what happened` for a person at a terminal. */
export function eventLine(event: CloudEvent): string {
  const data = event.data as Record<string, unknown>;
  const detail: string[] = [];
  if (event.subject !== undefined) detail.push(event.subject);
  if (typeof data.state === "string") detail.push(data.state);
  if (typeof data.activityId === "string") detail.push(`activity ${data.activityId}`);
  if (typeof data.readAt === "string") detail.push(`read ${data.readAt}`);
  if (typeof data.lastError === "string") detail.push(data.lastError);
  const counts = data.counts as Record<string, number> | undefined;
  if (counts !== undefined)
    detail.push(
      `${counts.total} recipients: ${counts.sent} sent, ${counts.unreachable} unreachable, ${counts.failed} failed, ${counts.rejected} rejected, ${counts.duplicate} duplicate, ${counts.read} read`,
    );
  if (typeof data.recipients === "number") detail.push(`${data.recipients} recipients named`);
  if (Array.isArray(data.errors))
    for (const e of data.errors as { path?: unknown; message?: unknown }[])
      detail.push(`${String(e.path)}: ${String(e.message)}`);
  return `${event.time}  ${event.type.padEnd(29)}  ${detail.join("  ")}`;
}
