import { SingleBar } from "cli-progress";

import type { StatusOptions } from "../client/http-transport";
import type { NotificationClient, WaitResult } from "../client/notification-client";
import type { NotificationStatus } from "../notifications/status";
import { type CliIo, writeLine } from "./cli-io";

export const DEFAULT_WAIT_SECONDS = 60;
const POLL_MS = 1_000;

/** Recipients that are final, of how many the request will have (known once it is split). */
function progressOf(status: NotificationStatus | undefined): { done: number; expected: number } {
  if (status === undefined) return { done: 0, expected: 0 };
  const c = status.counts;
  // An update's copies still to replace, a recall's copies still to delete, are not done yet.
  const undone = c.pending + status.outdated + (status.recalled ? c.sent : 0);
  return { done: c.total - undone, expected: status.expectedRecipients ?? c.total };
}

/**
 * Waits for the request to be final, showing how far it got: a progress bar on a terminal,
 * a line whenever something changed otherwise (a CI log stays short and readable).
 */
export async function waitWithProgress(
  client: NotificationClient,
  id: string,
  options: { seconds: number; query: StatusOptions },
  io: CliIo,
): Promise<WaitResult> {
  const bar =
    io.stderr.isTTY === true
      ? new SingleBar({
          // cli-progress wants a NodeJS stream; it only calls write() and reads isTTY/columns.
          stream: io.stderr as unknown as NodeJS.WritableStream,
          format: "Waiting |{bar}| {done}/{expected} recipients final | {state}",
          hideCursor: true,
          clearOnComplete: false,
        })
      : undefined;
  let lastLine = "";
  bar?.start(1, 0, { done: 0, expected: "?", state: "not seen yet" });
  try {
    return await client.waitForFinal(id, {
      ...options.query,
      timeoutMs: options.seconds * 1000,
      pollMs: POLL_MS,
      ...(io.sleep !== undefined ? { sleep: io.sleep } : {}),
      ...(io.now !== undefined ? { now: io.now } : {}),
      onProgress: (status) => {
        const { done, expected } = progressOf(status);
        const state = status?.state ?? "not seen yet";
        if (bar !== undefined) {
          // The bar's own total must be positive; the numbers shown are the true ones.
          bar.setTotal(Math.max(1, expected, done));
          bar.update(done, { done, expected: expected > 0 ? expected : "?", state });
          return;
        }
        const text = `Waiting for ${id}: ${state}, ${done}/${expected > 0 ? expected : "?"} recipients final`;
        if (text !== lastLine) writeLine(io.stderr, text);
        lastLine = text;
      },
    });
  } finally {
    bar?.stop();
  }
}
