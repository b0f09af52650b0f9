import { isAbsolute, join } from "node:path";

import { type Command, Option } from "commander";

import {
  type DeadLetter,
  type DeadLetterSelection,
  type DeadLetterStore,
  LocalDeadLetters,
} from "../dead-letters/dead-letter-store";
import { openServiceBusDeadLetters } from "../dead-letters/service-bus-dead-letters";
import { LocalQueue } from "../queue/local-queue";
import { type CliIo, UsageError, writeLine } from "./cli-io";
import { EXIT, type ExitCode } from "./exit-codes";
import { DEFAULT_QUEUE_DIR, ENV } from "./transport-options";

/** The queues Herald deploys (infra/main.bicep defaults); other names are accepted too. */
export const DLQ_QUEUES = ["notifications", "herald-work"] as const;

export interface DlqFlags {
  readonly queue?: string;
  readonly namespace?: string;
  readonly connectionString?: string;
  readonly queueDir?: string;
  readonly max?: number;
  readonly json?: boolean;
  readonly all?: boolean;
  readonly dryRun?: boolean;
  readonly newMessageId?: boolean;
}

/** How the CLI reaches dead letters; tests substitute their own. */
export type OpenDeadLetters = (
  target:
    | { readonly kind: "local"; readonly directory: string; readonly queueName: string }
    | { readonly kind: "namespace"; readonly namespace: string; readonly queueName: string }
    | {
        readonly kind: "connectionString";
        readonly connectionString: string;
        readonly queueName: string;
      },
) => DeadLetterStore;

export const openDeadLetters: OpenDeadLetters = (target) => {
  if (target.kind === "local") {
    return new LocalDeadLetters(
      new LocalQueue({ directory: target.directory, queueName: target.queueName }),
    );
  }
  // The Service Bus SDK is loaded inside, on this call only.
  return openServiceBusDeadLetters(
    target.kind === "namespace"
      ? { namespace: target.namespace }
      : { connectionString: target.connectionString },
    target.queueName,
  );
};

const WHERE = "Which dead letters (default: the local queue that npm start drains):";

export function addDlqOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        "--queue <name>",
        `the queue whose dead letters to read: ${DLQ_QUEUES.join(" (intake) or ")} (work) (default: "notifications")`,
      ).helpGroup(WHERE),
    )
    .addOption(
      new Option(
        "--namespace <fqdn>",
        `a Service Bus namespace, signed in with DefaultAzureCredential (az login, managed identity); needs Azure Service Bus Data Receiver on the queue, and Data Sender to replay [env ${ENV.namespace}]`,
      ).helpGroup(WHERE),
    )
    .addOption(
      new Option(
        "--connection-string <string>",
        `Service Bus with a connection string (the emulator; Herald's namespace has local auth off) [env ${ENV.connectionString}]`,
      ).helpGroup(WHERE),
    )
    .addOption(
      new Option(
        "--queue-dir <path>",
        `the local broker's folder [env ${ENV.queueDir}] (default: "${DEFAULT_QUEUE_DIR}")`,
      ).helpGroup(WHERE),
    );
}

function present(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/** Flags first, then the environment; exactly one place. */
export function resolveDeadLetterTarget(
  flags: DlqFlags,
  env: NodeJS.ProcessEnv,
  cwd: string,
): Parameters<OpenDeadLetters>[0] {
  const queueName = present(flags.queue) ?? "notifications";
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(queueName))
    throw new UsageError(`"${queueName}" is not a queue name`);
  const given = [
    ["namespace", present(flags.namespace)],
    ["connection-string", present(flags.connectionString)],
    ["queue-dir", present(flags.queueDir)],
  ].filter(([, v]) => v !== undefined);
  if (given.length > 1)
    throw new UsageError(`choose one of ${given.map(([k]) => `--${k}`).join(", ")}`);
  const namespace =
    present(flags.namespace) ?? (given.length === 0 ? present(env[ENV.namespace]) : undefined);
  if (namespace !== undefined) return { kind: "namespace", namespace, queueName };
  const connectionString =
    present(flags.connectionString) ??
    (given.length === 0 ? present(env[ENV.connectionString]) : undefined);
  if (connectionString !== undefined)
    return { kind: "connectionString", connectionString, queueName };
  const dir = present(flags.queueDir) ?? present(env[ENV.queueDir]) ?? DEFAULT_QUEUE_DIR;
  return { kind: "local", directory: isAbsolute(dir) ? dir : join(cwd, dir), queueName };
}

function selection(ids: readonly string[], flags: DlqFlags): DeadLetterSelection {
  if (flags.all === true && ids.length > 0) throw new UsageError("give ids or --all, not both");
  if (flags.all === true) return { kind: "all" };
  if (ids.length === 0)
    throw new UsageError("name the dead letters (ids from `herald dlq list`) or pass --all");
  return { kind: "ids", ids };
}

function kindOf(letter: DeadLetter): string {
  const kind = letter.applicationProperties.heraldKind;
  return typeof kind === "string" && kind !== "" ? kind : "request";
}

function summary(letter: DeadLetter): string {
  const session = letter.sessionId === undefined ? "" : `  session ${letter.sessionId}`;
  const when = letter.deadLetteredTime?.toISOString() ?? letter.enqueuedTime?.toISOString() ?? "";
  return `${letter.id}  ${kindOf(letter)}  message ${letter.messageId}${session}  deliveries ${letter.deliveryCount}  ${when}  ${letter.reason}${letter.description === "" ? "" : `: ${letter.description}`}`;
}

function asJson(letter: DeadLetter): Record<string, unknown> {
  return {
    ...letter,
    kind: kindOf(letter),
    enqueuedTime: letter.enqueuedTime?.toISOString(),
    deadLetteredTime: letter.deadLetteredTime?.toISOString(),
  };
}

export interface DlqDeps {
  readonly open?: OpenDeadLetters;
}

async function withStore<T>(
  flags: DlqFlags,
  io: CliIo,
  deps: DlqDeps,
  work: (store: DeadLetterStore) => Promise<T>,
): Promise<T> {
  const target = resolveDeadLetterTarget(flags, io.env ?? process.env, io.cwd ?? process.cwd());
  const store = (deps.open ?? openDeadLetters)(target);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/** `herald dlq list`: the dead letters, oldest first, without changing anything. */
export function dlqList(flags: DlqFlags, io: CliIo, deps: DlqDeps = {}): Promise<ExitCode> {
  return withStore(flags, io, deps, async (store) => {
    const letters = await store.list(flags.max ?? 100);
    if (flags.json === true) {
      writeLine(io.stdout, JSON.stringify(letters.map(asJson), null, 2));
      return EXIT.ok;
    }
    writeLine(io.stdout, `${letters.length} dead letter(s) in ${store.where}`);
    for (const letter of letters) writeLine(io.stdout, `  ${summary(letter)}`);
    return EXIT.ok;
  });
}

/** `herald dlq show <id>`: one dead letter with its body and properties. */
export function dlqShow(
  id: string,
  flags: DlqFlags,
  io: CliIo,
  deps: DlqDeps = {},
): Promise<ExitCode> {
  return withStore(flags, io, deps, async (store) => {
    const letter = (await store.list(flags.max ?? 10_000)).find((l) => l.id === id);
    if (letter === undefined) {
      writeLine(io.stderr, `herald: no dead letter ${id} in ${store.where}`);
      return EXIT.failure;
    }
    writeLine(io.stdout, JSON.stringify(asJson(letter), null, 2));
    return EXIT.ok;
  });
}

async function act(
  verb: "replay" | "purge",
  ids: readonly string[],
  flags: DlqFlags,
  io: CliIo,
  deps: DlqDeps,
): Promise<ExitCode> {
  const selected = selection(ids, flags);
  return withStore(flags, io, deps, async (store) => {
    let touched: DeadLetter[];
    if (flags.dryRun === true) {
      touched = (await store.list(flags.max ?? 10_000)).filter(
        (l) => selected.kind === "all" || selected.ids.includes(l.id),
      );
    } else if (verb === "replay") {
      touched = await store.replay(selected, { newMessageId: flags.newMessageId === true });
    } else {
      touched = await store.purge(selected);
    }
    const done =
      flags.dryRun === true ? `would ${verb}` : verb === "replay" ? "replayed" : "purged";
    if (flags.json === true) {
      writeLine(
        io.stdout,
        JSON.stringify({ [done.replace(" ", "")]: touched.map(asJson) }, null, 2),
      );
    } else {
      writeLine(io.stdout, `${done} ${touched.length} dead letter(s) in ${store.where}`);
      for (const letter of touched) writeLine(io.stdout, `  ${summary(letter)}`);
    }
    const missing =
      selected.kind === "ids" ? selected.ids.filter((id) => !touched.some((l) => l.id === id)) : [];
    if (missing.length > 0) {
      writeLine(
        io.stderr,
        `herald: not ${verb === "replay" ? "replayed" : "purged"}: ${missing.join(", ")} (not there: already replayed or purged?${verb === "replay" ? " Or its message id was sent within the duplicate detection window, so the queue would drop the copy: wait, or pass --new-message-id" : ""})`,
      );
      return EXIT.failure;
    }
    return EXIT.ok;
  });
}

export const dlqReplay = (ids: readonly string[], flags: DlqFlags, io: CliIo, deps: DlqDeps = {}) =>
  act("replay", ids, flags, io, deps);

export const dlqPurge = (ids: readonly string[], flags: DlqFlags, io: CliIo, deps: DlqDeps = {}) =>
  act("purge", ids, flags, io, deps);
