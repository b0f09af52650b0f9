import { ConfigError } from "../errors";
import { isGraphError } from "../graph/graph-error";
import type { Logger } from "../logging";
import type { Recipient } from "../model/recipient";
import type { QueuePort } from "../queue/queue-port";
import type { NewDelivery } from "../store/delivery-ledger";
import { type GroupDirectory, type GroupMemberName, GroupNotFoundError } from "./group-directory";
import { recipientKey } from "./recipients";
import { decide, type RetryPolicy } from "./retry-policy";
import { dispatchMessage, type DispatchWork } from "./work-items";

export interface GroupExpansionDependencies {
  /** Entra groups (Microsoft Graph); without it a group recipient is unreachable with why. */
  readonly groups: GroupDirectory | undefined;
  readonly queue: () => QueuePort;
  readonly policy: RetryPolicy;
  readonly clock: () => Date;
}

/** The group recipient being expanded, and the dispatch it belongs to. */
export interface GroupRecipient {
  readonly dispatch: DispatchWork;
  readonly key: string;
  readonly recipient: Recipient;
  readonly includeGuests: boolean;
}

/** Who a recipient is, as Herald learned it (Graph's names of a group's members), for display. */
export type PersonName = Pick<GroupMemberName, "userPrincipalName" | "displayName">;

export type GroupExpansion =
  /** `names`: the members' names, by recipient key. */
  | { readonly kind: "done"; readonly names: ReadonlyMap<string, PersonName> }
  /** The dispatch is scheduled again for `at` (Graph failed for now). */
  | { readonly kind: "later"; readonly at: Date }
  /** The group's own row, final, with why. */
  | { readonly kind: "unreachable"; readonly row: NewDelivery };

/**
 * Adds an Entra group's user members to `targets` (as AAD ids, so they merge with the same
 * people named directly; other names of them meet at the per-user guard). A failure the policy
 * retries (Graph's 429, 5xx, an unreadable answer) puts the whole dispatch back on the queue (it
 * is idempotent); a missing group, missing consent or a failure past the attempt budget is
 * recorded on the group's own row.
 */
export async function expandGroup(
  deps: GroupExpansionDependencies,
  group: GroupRecipient,
  targets: Map<string, Recipient>,
  log: Logger,
): Promise<GroupExpansion> {
  const { dispatch, key, recipient } = group;
  const unreachable = (lastError: string, state: "unreachable" | "failed" = "unreachable") => ({
    kind: "unreachable" as const,
    row: { recipientKey: key, recipient, state, lastError },
  });
  if (deps.groups === undefined)
    return unreachable(
      "Entra groups need Microsoft Graph: set GraphEndpoint (and grant GroupMember.Read.All)",
    );
  const found = new Map<string, Recipient>();
  const names = new Map<string, PersonName>();
  try {
    for await (const { aadObjectId, userPrincipalName, displayName } of deps.groups.members(
      recipient.groupId!,
      group.includeGuests,
    )) {
      const member: Recipient = { aadObjectId };
      const memberKey = recipientKey(member);
      found.set(memberKey, member);
      names.set(memberKey, { userPrincipalName, displayName });
    }
  } catch (error) {
    if (error instanceof GroupNotFoundError) return unreachable(error.message);
    // GraphEndpoint not allowed here (anonymous local mode takes only a loopback one).
    if (error instanceof ConfigError) return unreachable(error.message);
    if (!isGraphError(error)) throw error;
    const decision = decide(
      { source: "graph", error, context: "Graph could not list the group's members" },
      dispatch.attempt ?? 1,
      deps.policy,
    );
    if (decision.kind !== "retry")
      return unreachable(
        decision.reason,
        decision.kind === "unreachable" ? "unreachable" : "failed",
      );
    const at = new Date(deps.clock().getTime() + decision.delayMs);
    await deps
      .queue()
      .schedule(dispatchMessage({ ...dispatch, attempt: decision.attempt }, { unique: true }), at);
    log.warn("Graph could not list a group's members now; dispatch scheduled again", {
      kind: error.kind,
      retryAfterMs: error.retryAfterMs,
      at: at.toISOString(),
    });
    return { kind: "later", at };
  }
  for (const [memberKey, member] of found)
    if (!targets.has(memberKey)) targets.set(memberKey, member);
  if (found.size === 0)
    return unreachable(
      "the Entra group has no user members (guests excluded unless includeGuests)",
    );
  log.info("Entra group expanded", { members: found.size });
  return { kind: "done", names };
}
