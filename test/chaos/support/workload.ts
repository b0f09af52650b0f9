import { randomUUID } from "node:crypto";

import type {
  NotificationStatus,
  RecipientState,
  RecipientStatus,
} from "../../../shared/notifications/status";
import type { PostedActivity, SimUser, TeamsSimulator } from "../../simulator";
import { seededRandom } from "../../simulator/faults";

/** What every recipient of a request must end as, and how the request was submitted. */
export interface PlannedRequest {
  readonly id: string;
  readonly body: Record<string, unknown>;
  /** `http`: POST /api/notifications; `queue`: written to the local queue (as the CLI does). */
  readonly via: "http" | "queue";
  /** Invalid on purpose: recorded as `rejected` with its reasons, no recipients. */
  readonly invalid: boolean;
  /** Recipient key (`kind:value`, as the ledger keys it) -> final state expected. */
  readonly expected: ReadonlyMap<string, RecipientState>;
  /** Recipient key -> the simulated user it reaches (none for unknown users). */
  readonly users: ReadonlyMap<string, SimUser>;
}

export interface Tenant {
  /** Installed, reachable users. */
  readonly active: readonly SimUser[];
  /** Installed, then blocked the bot: Teams answers 403, so `unreachable`. */
  readonly blocked: SimUser;
  /** Installed, but Teams answers 500 ServiceError to every send: `failed` (not retried). */
  readonly broken: SimUser;
}

/** The text every chaos notification carries: the request id, to read back from Teams. */
export const TEXT_PREFIX = "chaos ";

export function textOf(requestId: string): string {
  return `${TEXT_PREFIX}${requestId}`;
}

export function requestIdOf(activity: PostedActivity): string | undefined {
  const text = activity.text;
  return activity.type === "message" && text?.startsWith(TEXT_PREFIX) === true
    ? text.slice(TEXT_PREFIX.length)
    : undefined;
}

type RecipientKind = "aadObjectId" | "userPrincipalName" | "teamsUserId";
const KINDS: readonly RecipientKind[] = ["aadObjectId", "userPrincipalName", "teamsUserId"];

function valueOf(user: SimUser, kind: RecipientKind): string {
  return kind === "aadObjectId"
    ? user.aadObjectId
    : kind === "teamsUserId"
      ? user.id
      : user.userPrincipalName;
}

/**
 * The ledger's recipient key: `kind:value`, the UPN lower-cased (see
 * shared/notifications/recipients.ts, which the status API reports recipients with).
 */
function keyOf(kind: RecipientKind, value: string): string {
  return `${kind}:${kind === "userPrincipalName" || kind === "aadObjectId" ? value.toLowerCase() : value}`;
}

/**
 * A repeatable mix of requests (seeded): mostly single recipients (delivered inline by the
 * processor), some fan-outs of 2–5, some to users Herald never saw (`unreachable`), some to
 * the blocked and the broken user, and a few invalid ones put straight on the queue.
 */
export function planRequests(
  sim: TeamsSimulator,
  tenant: Tenant,
  count: number,
  seed: number,
): PlannedRequest[] {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const run = randomUUID().slice(0, 8);
  const plans: PlannedRequest[] = [];
  for (let i = 0; i < count; i++) {
    const id = `chaos-${run}-${i}`;
    const roll = random();
    const via: PlannedRequest["via"] = i % 2 === 0 ? "http" : "queue";
    if (roll < 0.03) {
      // Invalid: only the queue path can carry it to the processor (HTTP answers 400).
      const body = {
        schemaVersion: 1,
        id,
        tenantId: "not-a-guid",
        recipients: [{ aadObjectId: tenant.active[0]!.aadObjectId }],
        message: { text: textOf(id) },
      };
      plans.push({ id, body, via: "queue", invalid: true, expected: new Map(), users: new Map() });
      continue;
    }
    const targets: { user: SimUser | undefined; state: RecipientState }[] = [];
    if (roll < 0.06) targets.push({ user: undefined, state: "unreachable" });
    else if (roll < 0.08) targets.push({ user: tenant.blocked, state: "unreachable" });
    else if (roll < 0.1) targets.push({ user: tenant.broken, state: "failed" });
    else if (roll < 0.22) {
      const size = 2 + Math.floor(random() * 4);
      const chosen = new Set<SimUser>();
      while (chosen.size < Math.min(size, tenant.active.length)) chosen.add(pick(tenant.active));
      for (const user of chosen) targets.push({ user, state: "sent" });
      if (random() < 0.3) targets.push({ user: undefined, state: "unreachable" });
    } else targets.push({ user: pick(tenant.active), state: "sent" });

    const recipients: Record<string, string>[] = [];
    const expected = new Map<string, RecipientState>();
    const users = new Map<string, SimUser>();
    for (const target of targets) {
      const kind = pick(KINDS);
      const value =
        target.user === undefined
          ? kind === "teamsUserId"
            ? `29:unknown-${randomUUID()}`
            : kind === "aadObjectId"
              ? randomUUID()
              : `nobody-${randomUUID().slice(0, 8)}@${sim.tenantId.slice(0, 8)}.example`
          : valueOf(target.user, kind);
      recipients.push({ [kind]: value });
      const key = keyOf(kind, value);
      expected.set(key, target.state);
      if (target.user !== undefined) users.set(key, target.user);
    }
    const body = {
      schemaVersion: 1,
      id,
      tenantId: sim.tenantId,
      recipients,
      message: { text: textOf(id), format: "plain" },
    };
    plans.push({ id, body, via, invalid: false, expected, users });
  }
  return plans;
}

export interface Verdict {
  readonly requests: number;
  readonly recipients: number;
  /** Final recipient states as the status API reports them. */
  readonly states: Readonly<Record<RecipientState, number>>;
  readonly rejectedRequests: number;
  /** Requests the status API does not know, or recipients it does not list. */
  readonly lost: string[];
  /** Recipients still pending (or a request not yet dispatched / rejected). */
  readonly notTerminal: string[];
  /** Recipients in a final state other than the one planned. */
  readonly wrongState: string[];
  /** Rejected requests without a reason naming a field. */
  readonly rejectedWithoutReason: string[];
  /** Copies Teams received beyond the first, per request and recipient. */
  readonly duplicates: number;
  readonly duplicateKeys: string[];
  /** Recipients recorded `sent` that Teams never received. */
  readonly sentButMissing: string[];
  /** Teams received a notification for a recipient not recorded as `sent`. */
  readonly receivedButNotSent: string[];
  /** Each duplicate's earlier copy (all but the last of a recipient's copies): when, and its id. */
  readonly duplicateCopies: ReceivedCopy[];
}

/** Copies Teams received, per `requestId|user id`, with the time of each. */
/** One copy of a request's message that reached a user's chat: when, and the id Teams gave it. */
export interface ReceivedCopy {
  readonly at: number;
  readonly activityId: string;
}

export function receivedCopies(sim: TeamsSimulator): Map<string, ReceivedCopy[]> {
  const copies = new Map<string, ReceivedCopy[]>();
  for (const activity of sim.allActivities()) {
    const requestId = requestIdOf(activity);
    if (requestId === undefined) continue;
    const key = `${requestId}|${activity.conversationId}`;
    const list = copies.get(key) ?? [];
    list.push({ at: activity.postedAt, activityId: activity.id });
    copies.set(key, list);
  }
  return copies;
}

/**
 * Compares what the status API reports and what Teams received with the plan: every request
 * and recipient accounted for, in the planned final state, received exactly as recorded.
 */
export function judge(
  sim: TeamsSimulator,
  plans: readonly PlannedRequest[],
  statuses: ReadonlyMap<string, NotificationStatus | undefined>,
  options: {
    /** A final state other than the planned one that is still right (e.g. `failed` on a 500). */
    accept?: (row: RecipientStatus, want: RecipientState) => boolean;
  } = {},
): Verdict {
  const states: Record<RecipientState, number> = {
    pending: 0,
    sent: 0,
    unreachable: 0,
    failed: 0,
    rejected: 0,
    duplicate: 0,
    cancelled: 0,
    recalled: 0,
  };
  const lost: string[] = [];
  const notTerminal: string[] = [];
  const wrongState: string[] = [];
  const rejectedWithoutReason: string[] = [];
  const sentButMissing: string[] = [];
  const receivedButNotSent: string[] = [];
  const duplicateKeys: string[] = [];
  const duplicateCopies: ReceivedCopy[] = [];
  let duplicates = 0;
  let recipients = 0;
  let rejectedRequests = 0;
  const copies = receivedCopies(sim);
  const accounted = new Set<string>();

  for (const plan of plans) {
    const status = statuses.get(plan.id);
    if (status === undefined) {
      lost.push(plan.id);
      continue;
    }
    if (!plan.invalid && status.state !== "completed")
      notTerminal.push(`${plan.id} (request ${status.state})`);
    if (plan.invalid) {
      if (status.state !== "rejected") notTerminal.push(`${plan.id} (${status.state})`);
      else rejectedRequests += 1;
      if (!(status.errors ?? []).some((e) => e.path !== "" && e.message !== ""))
        rejectedWithoutReason.push(plan.id);
      continue;
    }
    const listed = new Map(status.recipients.map((r) => [recipientKeyOf(r.recipient), r]));
    for (const [key, want] of plan.expected) {
      recipients += 1;
      const row = listed.get(key);
      if (row === undefined) {
        lost.push(`${plan.id} ${key}`);
        continue;
      }
      states[row.state] += 1;
      if (row.state === "pending") notTerminal.push(`${plan.id} ${key}`);
      else if (row.state !== want && options.accept?.(row, want) !== true)
        wrongState.push(`${plan.id} ${key}: ${row.state} (${row.lastError ?? ""}), want ${want}`);
      const user = plan.users.get(key);
      if (user === undefined) continue;
      const copyKey = `${plan.id}|${sim.personalConversationId(user)}`;
      accounted.add(copyKey);
      const received = copies.get(copyKey) ?? [];
      if (row.state === "sent" && received.length === 0) sentButMissing.push(`${plan.id} ${key}`);
      if (row.state !== "sent" && received.length > 0)
        receivedButNotSent.push(`${plan.id} ${key} (${row.state})`);
      if (received.length > 1) {
        duplicates += received.length - 1;
        duplicateKeys.push(`${plan.id} ${key} x${received.length}`);
        duplicateCopies.push(...received.slice(0, -1));
      }
    }
  }
  for (const [copyKey] of copies)
    if (!accounted.has(copyKey)) receivedButNotSent.push(`${copyKey} (not planned)`);

  return {
    requests: plans.length,
    recipients,
    states,
    rejectedRequests,
    lost,
    notTerminal,
    wrongState,
    rejectedWithoutReason,
    duplicates,
    duplicateKeys,
    sentButMissing,
    receivedButNotSent,
    duplicateCopies,
  };
}

function recipientKeyOf(recipient: Record<string, unknown>): string {
  for (const kind of KINDS) {
    const value = recipient[kind];
    if (typeof value === "string") return keyOf(kind, value);
  }
  return JSON.stringify(recipient);
}
