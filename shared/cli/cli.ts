import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

import { Command, CommanderError, InvalidArgumentError, Option } from "commander";

import { formatIssue, RequestConflictError, RequestValidationError } from "../client/client-errors";
import { toError } from "../errors";
import { change, type ChangeFlags } from "./change-command";
import { type CliIo, UsageError, writeLine } from "./cli-io";
import { addDlqOptions, type DlqFlags, dlqList, dlqPurge, dlqReplay, dlqShow } from "./dlq-command";
import { events, type EventsFlags } from "./events-command";
import { EXIT, EXIT_CODES_HELP, type ExitCode } from "./exit-codes";
import { notify, type NotifyFlags } from "./notify-command";
import { RECIPIENT_STATES, status, type StatusFlags } from "./status-command";
import { addSendTransportOptions, addStatusTransportOptions } from "./transport-options";

const NOTIFY_EXAMPLES = `
Examples:
  herald notify --tenant 72f988bf-86f1-41af-91ab-2d7cd011db47 --to alice@contoso.com --text "Your expense report was approved"
  herald notify --tenant <tenantId> --to <aadObjectId> --to 29:1abc… --card card.json --summary "Approval needed"
  herald notify --tenant <tenantId> --team "19:…@thread.tacv2" --text "Release 4.2 ships tonight" --not-before 2026-03-01T18:00:00Z
  herald notify --file requests.jsonl --skip-invalid
  herald notify --endpoint https://herald-func.azurewebsites.net --tenant <tenantId> --to bob@contoso.com --text "Hi"   (key in HERALD_FUNCTION_KEY)
  herald notify --endpoint <url> --tenant <tenantId> --to bob@contoso.com --text "Hi" --id order-42 --wait 120

Over --endpoint Herald answers each request: accepted (exit 0), invalid (2), or a conflict (4:
the id is already used in the tenant by a request with different content; nothing was sent).
A queue (Service Bus, the local folder) answers nothing: a request sent there is accepted or
refused when Herald takes it; see what happened with herald status <id> --tenant <tenantId> --wait.
--wait then waits for the request to be final and exits as herald status does. Over a queue it
reports a conflict (4) when Herald counted a refused submission of the id after the send; the
status cannot say whose copy was refused, and on Service Bus a second message with the same id
within the duplicate detection window (10 minutes) is dropped by the broker unseen.

Recipients (--to): user@domain is a UPN, a GUID an Entra object id, 29:… a Teams user id.
A bulk file has one JSON notification request per line (see
shared/notifications/notification-request.schema.json); "id" and "schemaVersion" may be left out.
A bad line is reported with its line number and field, and nothing is sent unless --skip-invalid.

${EXIT_CODES_HELP}
`;

const STATUS_EXAMPLES = `
Examples:
  herald status 7f0c2d6e-…                   (npm start on http://127.0.0.1:7071)
  herald status 7f0c2d6e-… --tenant 72f988bf-86f1-41af-91ab-2d7cd011db47 --wait 120
  herald status 7f0c2d6e-… --wait --json
  herald status 7f0c2d6e-… --endpoint https://herald-func.azurewebsites.net   (key in HERALD_FUNCTION_KEY)

A request is final when it is completed, rejected or failed. "completed" only says every
recipient is final: the exit code says whether all were reached (0) or not (5); 6 means
not final yet.

${EXIT_CODES_HELP}
`;

const EVENTS_EXAMPLES = `
Examples:
  herald events 7f0c2d6e-… --tenant 72f988bf-86f1-41af-91ab-2d7cd011db47
  herald events 7f0c2d6e-… --tenant <tenantId> --follow 300
  herald events 7f0c2d6e-… --tenant <tenantId> --json | jq .type

Events are CloudEvents 1.0 (docs/events.md), in order; --json prints one per line. The exit
code is herald status's, from the request's final event (completed or rejected): 0 everyone
was reached, 5 not, 6 not final yet (or --follow ran out).

${EXIT_CODES_HELP}
`;

const DLQ_EXAMPLES = `
Examples:
  herald dlq list                                          (npm start's local queue)
  herald dlq list --namespace sb-herald-x7k2.servicebus.windows.net --queue herald-work
  herald dlq show 000001764590000.lx3k0001a1b2c3d4e5.6 --queue-dir .data/queue
  herald dlq replay --all --dry-run --namespace <fqdn>     (lists what would go back, changes nothing)
  herald dlq replay 41 42 --namespace <fqdn> --queue notifications
  herald dlq purge --all --namespace <fqdn> --queue herald-work

A replay sends a copy (same body, message id, properties and session id) to the queue and then
removes the dead letter. Within the queue's duplicate detection window (10 minutes by default)
the broker drops a message id it has already seen: wait, or pass --new-message-id (Herald itself
deduplicates by request id and recipient).
`;

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function positiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a whole number`);
    return n;
  };
}

/** The package version, from the nearest package.json named "herald" (source or dist). */
function version(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "herald" && pkg.version !== undefined) return pkg.version;
    } catch {
      // no package.json here: look further up
    }
    if (dirname(dir) === dir) return "0.0.0";
  }
}

/** `--wait` and `--json` of `update` and `recall`. */
function addChangeOptions(command: Command): Command {
  return command
    .option(
      "--wait [seconds]",
      "then wait until every copy shows the change (default 60 s; a progress bar on a terminal); needs Herald's HTTP endpoint (--endpoint, or --status-endpoint over a queue)",
      positiveInt("--wait"),
    )
    .option("--json", "print the result as JSON (with --wait: the final status)");
}

/** A fresh program per run: commander keeps parsed values on the command objects. */
function buildProgram(io: CliIo, setExit: (code: ExitCode) => void): Command {
  const program = new Command("herald")
    .description(
      "Send proactive Microsoft Teams notifications through Herald, and read what happened to them.",
    )
    .version(version(), "-V, --version")
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showHelpAfterError("(add --help for usage)")
    .addHelpText("after", `\n${EXIT_CODES_HELP}\n`);

  const notifyCommand = program
    .command("notify")
    .description(
      "Send a notification to Teams users (or every member of a team or Entra group), or a bulk file of them.",
    )
    .option("--tenant <tenantId>", "the Microsoft 365 tenant (GUID) of the recipients")
    .option(
      "--to <recipient>",
      "a user: UPN (alice@contoso.com), Entra object id (GUID) or Teams user id (29:…); repeat for more",
      collect,
    )
    .option("--team <teamId>", "every member of a team (19:…@thread.tacv2); repeatable", collect)
    .option(
      "--group <groupId>",
      "every user of an Entra group (its object id; nested groups included); repeatable",
      collect,
    )
    .option("--include-guests", "with --group: guests of the group too (default: members only)")
    .option("--text <text>", "the message text (markdown unless --format plain)")
    .addOption(
      new Option("--format <format>", "how Teams renders --text").choices(["markdown", "plain"]),
    )
    .option("--card <file>", "an Adaptive Card JSON file to send instead of text")
    .option("--summary <text>", "the notification preview text")
    .option(
      "--not-before <iso>",
      "deliver no earlier than this ISO 8601 time (e.g. 2026-03-01T09:00:00Z)",
    )
    .option("--id <id>", "the request id (idempotency key; default: a new UUID)")
    .option("--correlation-id <id>", "your correlation id, carried into Herald's logs")
    .option(
      "--file <requests.jsonl>",
      "send every request in a JSON Lines file (one request per line)",
    )
    .option(
      "--skip-invalid",
      "with --file: send the valid lines and report the invalid ones (exit code 3)",
    )
    .option("--dry-run", "validate only; send nothing")
    .option(
      "--wait [seconds]",
      "then wait until the request is final (default 60 s) and exit as herald status does; needs Herald's HTTP endpoint (--endpoint, or --status-endpoint over a queue)",
      positiveInt("--wait"),
    )
    .option("--json", "print the result as JSON (with --wait: the final status)");
  addSendTransportOptions(notifyCommand)
    .addHelpText("after", NOTIFY_EXAMPLES)
    .action(async (flags: NotifyFlags) => setExit(await notify(flags, io)));

  const updateCommand = program
    .command("update")
    .description(
      "Correct a sent notification: replace its message in every chat (Teams marks it edited), or move a scheduled one.",
    )
    .argument("<id>", "the request id that notify printed")
    .option("--tenant <tenantId>", "the request's tenant (GUID)")
    .option("--text <text>", "the new message text (markdown unless --format plain)")
    .addOption(
      new Option("--format <format>", "how Teams renders --text").choices(["markdown", "plain"]),
    )
    .option("--card <file>", "a new Adaptive Card JSON file instead of text")
    .option("--summary <text>", "a new notification preview text")
    .option("--not-before <iso>", "a new delivery time, while the request is still scheduled")
    .option(
      "--recipient <recipient>",
      "only this person's copy: UPN, Entra object id (GUID) or Teams user id (29:…); needs --endpoint",
    )
    .option("--correlation-id <id>", "your correlation id, carried into Herald's logs");
  addChangeOptions(addSendTransportOptions(updateCommand)).action(
    async (id: string, flags: ChangeFlags) => setExit(await change("update", id, flags, io)),
  );

  const recallCommand = program
    .command("recall")
    .description(
      "Withdraw a notification: delete every sent copy (Teams leaves a placeholder) and cancel the rest.",
    )
    .argument("<id>", "the request id that notify printed")
    .option("--tenant <tenantId>", "the request's tenant (GUID)")
    .option("--correlation-id <id>", "your correlation id, carried into Herald's logs");
  addChangeOptions(addSendTransportOptions(recallCommand)).action(
    async (id: string, flags: ChangeFlags) => setExit(await change("recall", id, flags, io)),
  );

  const statusCommand = program
    .command("status")
    .description(
      "Show a notification request's per-recipient states (GET /api/notifications/{id}).",
    )
    .argument("<id>", "the request id that notify printed")
    .option(
      "--tenant <tenantId>",
      "the request's tenant (GUID): requests are identified by tenant and id, and the endpoint asks for it when several tenants use the id",
    )
    .addOption(
      new Option("--state <state>", "list only recipients in this state").choices(RECIPIENT_STATES),
    )
    .option("--limit <n>", "list at most this many recipients", positiveInt("--limit"))
    .option(
      "--wait [seconds]",
      "wait until the request is final: completed, rejected or failed (default 60 s; a progress bar on a terminal)",
      positiveInt("--wait"),
    )
    .option("--json", "print the status as JSON");
  addStatusTransportOptions(statusCommand)
    .addHelpText("after", STATUS_EXAMPLES)
    .action(async (id: string, flags: StatusFlags) => setExit(await status(id, flags, io)));

  const eventsCommand = program
    .command("events")
    .description(
      "Show a notification request's events, in order (GET /api/notifications/{id}/events).",
    )
    .argument("<id>", "the request id that notify printed")
    .option("--tenant <tenantId>", "the request's tenant (GUID); required")
    .option(
      "--follow [seconds]",
      "print events as they happen until the request is final (default 60 s)",
      positiveInt("--follow"),
    )
    .option("--after <cursor>", "start after this cursor (a page's next)")
    .option("--json", "print each event as one line of JSON");
  addStatusTransportOptions(eventsCommand)
    .addHelpText("after", EVENTS_EXAMPLES)
    .action(async (id: string, flags: EventsFlags) => setExit(await events(id, flags, io)));

  const dlq = program
    .command("dlq")
    .description(
      "List, show, replay or purge dead-lettered messages of the local queue or a Service Bus queue.",
    )
    .addHelpText("after", DLQ_EXAMPLES);
  addDlqOptions(
    dlq
      .command("list")
      .description("List the dead letters, oldest first (changes nothing).")
      .option("--max <n>", "list at most this many (default 100)", positiveInt("--max"))
      .option("--json", "print them as JSON"),
  ).action(async (flags: DlqFlags) => setExit(await dlqList(flags, io)));
  addDlqOptions(
    dlq
      .command("show")
      .description("Show one dead letter: body, properties, reason.")
      .argument("<id>", "the id `herald dlq list` printed"),
  ).action(async (id: string, flags: DlqFlags) => setExit(await dlqShow(id, flags, io)));
  addDlqOptions(
    dlq
      .command("replay")
      .description("Send dead letters back to their queue (a copy, then remove the dead letter).")
      .argument("[ids...]", "ids from `herald dlq list`")
      .option("--all", "every dead letter of the queue")
      .option("--dry-run", "print what would be replayed; change nothing")
      .option("--new-message-id", "give each copy a new message id (past duplicate detection)")
      .option("--json", "print the result as JSON"),
  ).action(async (ids: string[], flags: DlqFlags) => setExit(await dlqReplay(ids, flags, io)));
  addDlqOptions(
    dlq
      .command("purge")
      .description("Delete dead letters for good.")
      .argument("[ids...]", "ids from `herald dlq list`")
      .option("--all", "every dead letter of the queue")
      .option("--dry-run", "print what would be deleted; change nothing")
      .option("--json", "print the result as JSON"),
  ).action(async (ids: string[], flags: DlqFlags) => setExit(await dlqPurge(ids, flags, io)));

  return program;
}

/**
 * Runs the CLI on `argv` (the arguments after `herald`) and resolves to the exit code; never
 * exits the process itself, so tests run it in-process with their own streams.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  let exit: ExitCode = EXIT.ok;
  const program = buildProgram(io, (code) => {
    exit = code;
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
    return exit;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version print and end with 0; anything else commander refused is usage.
      return error.code === "commander.helpDisplayed" || error.code === "commander.version"
        ? EXIT.ok
        : EXIT.usage;
    }
    if (error instanceof UsageError) {
      writeLine(io.stderr, `herald: ${error.message}`);
      writeLine(io.stderr, "(add --help for usage)");
      return EXIT.usage;
    }
    if (error instanceof RequestConflictError) {
      writeLine(io.stderr, `herald: ${error.message}`);
      return EXIT.conflict;
    }
    if (error instanceof RequestValidationError) {
      writeLine(io.stderr, `herald: refused as invalid, nothing was sent:`);
      for (const issue of error.issues) writeLine(io.stderr, `  ${formatIssue(issue)}`);
      return EXIT.usage;
    }
    writeLine(io.stderr, `herald: ${toError(error).message}`);
    return EXIT.failure;
  }
}
