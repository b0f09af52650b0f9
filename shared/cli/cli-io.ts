import type { NotificationClientOptions } from "../client/notification-client";

/** The little of a stream the CLI writes to (process.stdout, or a test's collector). */
export interface OutputStream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** What `run` needs from its process; tests pass their own. */
export interface CliIo {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  /** Default: process.env (transport settings: SERVICEBUS_CONNECTION_STRING, HERALD_…). */
  readonly env?: NodeJS.ProcessEnv;
  /** Relative paths (files, the local queue folder) resolve against this (default: process.cwd()). */
  readonly cwd?: string;
  /** Extra client options (tests: fewer HTTP tries, a fetch of their own). */
  readonly clientOptions?: NotificationClientOptions;
  /** How `--wait` waits between looks (tests make it instant). */
  readonly sleep?: (ms: number) => Promise<void>;
  /** What time it is for `--wait`'s deadline, in ms (tests pair it with their `sleep`). */
  readonly now?: () => number;
}

/** Bad command line: reported with exit code 2, nothing sent. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export function writeLine(stream: OutputStream, line = ""): void {
  stream.write(`${line}\n`);
}
