import type { NotificationStatus } from "../notifications/status";

/**
 * The CLI's exit codes: part of its interface, documented in `herald --help` and
 * docs/lob-quickstart.md. Scripts rely on them, so they never change meaning: add, never
 * renumber.
 */
export const EXIT = {
  /** Everything asked for was done (`status`: the request is final and everyone was reached). */
  ok: 0,
  /** Sending or reading status failed (network, credentials, the endpoint or broker refused). */
  failure: 1,
  /** Bad command line or invalid notification request: nothing was sent. */
  usage: 2,
  /** `--skip-invalid`: every valid line was sent, some invalid lines were skipped. */
  partial: 3,
  /** The id is already used in the tenant by a request with different content: nothing sent. */
  conflict: 4,
  /** The request is final and not everyone was reached (or it was rejected or failed). */
  notDelivered: 5,
  /** The request is not final yet (`status` without `--wait`, or the wait ran out). */
  notFinal: 6,
  /** `update` / `recall`: Herald has no request with that id in the tenant (or that recipient). */
  notFound: 7,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0  done (status: final, and every recipient was sent the notification)
  1  runtime failure: sending or reading status failed (network, credentials, refused)
  2  usage or validation error: nothing was sent
  3  --skip-invalid: the valid lines were sent, the invalid ones (listed) were not
  4  conflict: the id is already used in the tenant by a request with different content;
     nothing of this one was sent (use a new id); update/recall: refused as the request is
     (recalled, rejected, --not-before after it was sent, or --recipient's copy not sent)
  5  final, but not everyone was reached: some recipient unreachable, failed or rejected,
     or the request itself rejected or failed
  6  not final yet: status without --wait on an unfinished request, or --wait ran out
     (update/recall --wait: copies still being replaced or deleted)
  7  update/recall: no request with that id in the tenant (update --recipient: or no copy
     for that recipient)`;

/**
 * A request is delivered to everyone when it completed and every recipient was sent it, or is
 * a second name of a person who was (`duplicate`: one copy per person). A request with no
 * recipients at all (an empty team) reached nobody, so it does not count as delivered.
 */
export function isAllDelivered(status: NotificationStatus): boolean {
  const c = status.counts;
  return status.state === "completed" && c.total > 0 && c.sent + c.duplicate === c.total;
}

/** What `herald status` (and `notify --wait`) exit with for a status. */
export function statusExitCode(status: NotificationStatus): ExitCode {
  if (!status.final) return EXIT.notFinal;
  return isAllDelivered(status) ? EXIT.ok : EXIT.notDelivered;
}
