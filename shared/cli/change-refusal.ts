import {
  ChangeRefusedError,
  formatIssue,
  NotificationNotFoundError,
  RecipientNotFoundError,
  RequestValidationError,
} from "../client/client-errors";
import { type CliIo, writeLine } from "./cli-io";
import { EXIT, type ExitCode } from "./exit-codes";

/** Herald's refusals as exit codes: invalid 2, refused as the request is 4, unknown id 7. */
export function refusal(error: unknown, operation: string, io: CliIo): ExitCode {
  if (error instanceof RequestValidationError) {
    writeLine(io.stderr, `herald: invalid ${operation}; nothing was sent:`);
    for (const issue of error.issues) writeLine(io.stderr, `  ${formatIssue(issue)}`);
    return EXIT.usage;
  }
  if (error instanceof ChangeRefusedError) {
    writeLine(io.stderr, `herald: ${error.message}`);
    return EXIT.conflict;
  }
  if (error instanceof NotificationNotFoundError || error instanceof RecipientNotFoundError) {
    writeLine(io.stderr, `herald: ${error.message}`);
    return EXIT.notFound;
  }
  throw error;
}
