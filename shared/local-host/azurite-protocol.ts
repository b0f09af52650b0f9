import type { Socket } from "node:net";

import { z } from "zod";

/**
 * How a start, the `npm run azurite:*` commands and a data folder's Azurite process talk: one
 * JSON object per line over a loopback TCP connection to the port the folder's lock names.
 * `attach` keeps its connection open for as long as the host runs: that open connection is the
 * host's lease (the kernel closes it when the host dies, however it dies), and its close is how
 * the host learns that Azurite stopped.
 */
export const PROTOCOL = 1;

export const requestSchema = z.discriminatedUnion("op", [
  z.object({ op: z.literal("attach"), pid: z.number().int().positive() }),
  z.object({ op: z.literal("status") }),
  z.object({ op: z.literal("stop"), force: z.boolean() }),
]);
export type ControlRequest = z.infer<typeof requestSchema>;

export const statusSchema = z.object({
  protocol: z.number().int(),
  pid: z.number().int(),
  dataDir: z.string(),
  state: z.enum(["starting", "ready", "stopping"]),
  /** Set once ready. */
  tableEndpoint: z.string().optional(),
  /** The port asked for, when it was taken and a free one was used. */
  portTaken: z.number().int().optional(),
  startedAt: z.string(),
  /** The pids of the hosts attached now. */
  hosts: z.array(z.number().int()),
  /** When it stops by itself if no host attaches before; null while hosts are attached or never. */
  idleExitAt: z.string().nullable(),
  idleMs: z.number().int(),
  persistence: z.object({
    file: z.string(),
    autosaveIntervalMs: z.number().int(),
    saves: z.number().int(),
    lastSaveAt: z.string().optional(),
    unsavedChanges: z.boolean(),
    saveInFlight: z.boolean(),
  }),
});
export type AzuriteStatus = z.infer<typeof statusSchema>;

export const answerSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("attached"), status: statusSchema }),
  z.object({ kind: z.literal("status"), status: statusSchema }),
  z.object({ kind: z.literal("stopping"), status: statusSchema }),
  z.object({ kind: z.literal("refused"), hosts: z.array(z.number().int()) }),
  z.object({ kind: z.literal("failed"), message: z.string() }),
]);
export type ControlAnswer = z.infer<typeof answerSchema>;

/** The daemon's command line (its argv[2], JSON), written by the start that spawns it. */
export const daemonArgsSchema = z.object({
  dataDir: z.string().min(1),
  /** 0 takes a free port. */
  port: z.number().int().min(0).max(65_535),
  /** On EADDRINUSE take a free port instead of exiting with PORT_IN_USE. */
  fallbackToFreePort: z.boolean(),
  /** Stop this long after the last host left (and after start, until one attaches); 0: never. */
  idleMs: z.number().int().min(0),
  autosaveIntervalMs: z.number().int().positive(),
});
export type DaemonArgs = z.infer<typeof daemonArgsSchema>;

/** The daemon's exit codes a start acts on. */
export const DAEMON_EXIT = {
  /** Another Azurite process holds the folder: attach to that one. */
  folderHeld: 3,
  /** The folder stopped being this process's (deleted, taken over): it exited without saving. */
  lockLost: 4,
  /** The port asked for is taken and no fallback was allowed. */
  portInUse: 5,
} as const;

/** Calls `onMessage` with each line's JSON (or the parse error). */
export function readLines(socket: Socket, onMessage: (message: unknown) => void): void {
  let buffered = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buffered += chunk;
    // A control message is a few hundred bytes; anything this long is not one.
    if (buffered.length > 64 * 1024) {
      socket.destroy();
      return;
    }
    for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch (error) {
        message = error;
      }
      onMessage(message);
    }
  });
}

export function writeLine(socket: Socket, message: ControlRequest | ControlAnswer): void {
  socket.write(`${JSON.stringify(message)}\n`);
}

/** "15 s", "10 min": how long Azurite waits after the last host left. */
export function describeDuration(ms: number): string {
  return ms < 60_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}
