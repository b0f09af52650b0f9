/**
 * The CLI's exit codes: part of its interface, documented in `herald --help` and
 * docs/lob-quickstart.md. Scripts rely on them, so they never change meaning.
 */
export const EXIT = {
  /** Everything asked for was done. */
  ok: 0,
  /** Sending or reading status failed (network, credentials, the endpoint or broker refused). */
  failure: 1,
  /** Bad command line or invalid notification request: nothing was sent. */
  usage: 2,
  /** `--skip-invalid`: every valid line was sent, some invalid lines were skipped. */
  partial: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0  done
  1  runtime failure: sending or reading status failed (network, credentials, refused)
  2  usage or validation error: nothing was sent
  3  --skip-invalid: the valid lines were sent, the invalid ones (listed) were not`;
