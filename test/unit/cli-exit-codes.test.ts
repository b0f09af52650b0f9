import { EXIT, statusExitCode } from "../../shared/cli/exit-codes";
import type { NotificationStatus, RequestStatusState } from "../../shared/notifications/status";

function status(
  state: RequestStatusState,
  counts: Partial<NotificationStatus["counts"]>,
): NotificationStatus {
  const all = {
    pending: 0,
    sent: 0,
    unreachable: 0,
    failed: 0,
    rejected: 0,
    duplicate: 0,
    cancelled: 0,
    recalled: 0,
    ...counts,
  };
  const total = Object.values(all).reduce((a, b) => a + b, 0);
  const read = 0;
  return {
    id: "r1",
    state,
    final:
      state === "completed" || state === "rejected" || state === "failed" || state === "recalled",
    revision: 1,
    recalled: state === "recalled",
    outdated: 0,
    createdAt: "2026-12-01T00:00:00Z",
    updatedAt: "2026-12-01T00:00:00Z",
    counts: { ...all, total, read },
    recipients: [],
    recipientsTruncated: false,
  };
}

describe("herald status's exit code", () => {
  it.each([
    ["every recipient sent", status("completed", { sent: 3 }), EXIT.ok],
    [
      "sent, and a second name of the same person",
      status("completed", { sent: 1, duplicate: 1 }),
      EXIT.ok,
    ],
    [
      "one recipient unreachable",
      status("completed", { sent: 2, unreachable: 1 }),
      EXIT.notDelivered,
    ],
    ["every recipient unreachable", status("completed", { unreachable: 2 }), EXIT.notDelivered],
    ["one recipient failed", status("completed", { sent: 1, failed: 1 }), EXIT.notDelivered],
    [
      "a completed request with no recipients (an empty team)",
      status("completed", {}),
      EXIT.notDelivered,
    ],
    ["a rejected request", status("rejected", {}), EXIT.notDelivered],
    ["a request that failed", status("failed", { sent: 1 }), EXIT.notDelivered],
    ["a queued request", status("queued", {}), EXIT.notFinal],
    ["a request in progress", status("in-progress", { sent: 1, pending: 1 }), EXIT.notFinal],
  ])("for %s is %d", (_name, given, code) => {
    expect(statusExitCode(given)).toBe(code);
  });
});
