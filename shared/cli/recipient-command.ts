import type { UpdateInput } from "../client/changes";
import {
  NotificationClient,
  type NotificationClientOptions,
  type NotificationClientTarget,
} from "../client/notification-client";
import type { RecipientChangeAnswer } from "../client/recipient-changes";
import { recipientNamed } from "../model/recipient";
import { refusal } from "./change-refusal";
import { type CliIo, UsageError, writeLine } from "./cli-io";
import { EXIT, type ExitCode } from "./exit-codes";

/**
 * `herald update <id> --recipient <r> --text …`: one person's copy of a sent request replaced
 * with content of its own (`PATCH /api/notifications/{id}/recipients/{recipient}`), over
 * Herald's HTTP endpoint only. Exit codes as `herald update`: invalid 2, refused 4, unknown
 * request or recipient 7.
 */
export async function updateRecipient(
  id: string,
  tenantId: string,
  recipient: string,
  input: Partial<UpdateInput>,
  run: {
    readonly target: NotificationClientTarget;
    readonly options: NotificationClientOptions;
    readonly flags: {
      readonly wait?: number | true | undefined;
      readonly json?: boolean | undefined;
      readonly correlationId?: string | undefined;
    };
    readonly io: CliIo;
  },
): Promise<ExitCode> {
  const { target, options, flags, io } = run;
  const person = recipient.trim();
  if (recipientNamed(person) === undefined)
    throw new UsageError(
      `--recipient "${person}" is not a UPN (alice@contoso.com), Entra object id (GUID) or Teams user id (29:…)`,
    );
  if (!("endpoint" in target))
    throw new UsageError("--recipient needs Herald's HTTP endpoint (--endpoint)");
  if (flags.wait !== undefined)
    throw new UsageError("--wait applies to a whole request; see the copy with herald status");
  const client = new NotificationClient(target, { ...options, ...io.clientOptions });
  let answer: RecipientChangeAnswer;
  try {
    answer = await client.updateRecipient(id, tenantId, person, {
      ...(input.message !== undefined ? { message: input.message } : {}),
      ...(input.summary !== undefined ? { summary: input.summary } : {}),
      ...(flags.correlationId !== undefined ? { correlationId: flags.correlationId.trim() } : {}),
    });
  } catch (error) {
    return refusal(error, "update", io);
  } finally {
    await client.close();
  }
  writeLine(
    io.stdout,
    flags.json === true
      ? JSON.stringify({ id, operation: "update", ...answer })
      : `Updated ${id} for ${person} (revision ${answer.revision}, per-recipient update ${answer.override})`,
  );
  return EXIT.ok;
}
