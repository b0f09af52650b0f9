import type { CatalogAppIds } from "../graph/catalog-app-ids";
import type { Delivery, WriteResult } from "../store/delivery-ledger";
import type { UserReference } from "../store/user-references";
import type { Decision } from "./retry-policy";
import type { Slot } from "./tenant-work";

/**
 * Where a never-seen recipient's install stands after one step (proactive-install.ts):
 * - `ready`: Herald has the user's reference now (with the 1:1 chat): send as to anyone;
 * - `final`: `unreachable` or `failed` for a reason no call gave (no such UPN, no chat in time);
 * - `decided`: a Graph or Teams call failed; the policy's decision (retry-policy.ts) says what
 *   comes next: the next attempt, or the end;
 * - `same-person`: another recipient of the request is this person, and it installs for them;
 * - `later`: nothing failed, it is just not time yet (pacing, the chat not opened yet, another
 *   invocation's write): the same attempt runs again at `at`.
 */
export type InstallStep =
  | { readonly kind: "ready"; readonly user: UserReference; readonly row: Delivery }
  | {
      readonly kind: "final";
      readonly state: "unreachable" | "failed";
      readonly reason: string;
      readonly row: Delivery;
    }
  | { readonly kind: "decided"; readonly decision: Decision; readonly row: Delivery }
  | { readonly kind: "same-person"; readonly of: string; readonly row: Delivery }
  | {
      readonly kind: "later";
      readonly at: Date;
      readonly reason: string;
      readonly row: Delivery;
      /** The install slot reserved for this recipient at `at`: the next run uses it. */
      readonly installSlotAt?: Date;
    };

/** A step that ended the flow early; thrown inside a step, caught at its top (never escapes). */
export class InstallStop extends Error {
  constructor(readonly step: InstallStep) {
    super(`proactive install stopped: ${step.kind}`);
  }
}

/** A row changed under us (a redelivered copy): look again after this long. */
const RACE_RECHECK_MS = 5_000;

/** The delivery row as one step's writes leave it (a failure is recorded on the latest). */
export class InstallProgress {
  constructor(
    public row: Delivery,
    private readonly clock: () => Date,
  ) {}

  /** The row a write left; another invocation's write first: stop and look again later. */
  written(result: WriteResult): Delivery {
    if (result.kind === "written") {
      this.row = result.row;
      return result.row;
    }
    throw new InstallStop({
      kind: "later",
      row: this.row,
      at: new Date(this.clock().getTime() + RACE_RECHECK_MS),
      reason: "another invocation changed this delivery; looking again",
    });
  }
}

/**
 * Goes on when the paced call may go now; otherwise the step stops for the slot's time (holding
 * the slot for this work when the runner reserved it).
 */
export function goOrStop(slot: Slot, row: Delivery, reason: string): void {
  if (slot.kind === "go") return;
  throw new InstallStop({
    kind: "later",
    row,
    at: slot.at,
    ...(slot.reserved === true ? { installSlotAt: slot.at } : {}),
    reason,
  });
}

/** The pacing key of one of Graph's Teams limits in a tenant (graph-limits.ts). */
export function graphLane(tenantId: string, limit: "install" | "read"): string {
  return `${tenantId.toLowerCase()}|${limit}`;
}

/** The app's catalog id, or the step ends: the app is not in the org catalog (yet). */
export async function catalogAppId(catalog: CatalogAppIds, row: Delivery): Promise<string> {
  const app = await catalog.resolve();
  if (app.kind === "found") return app.catalogAppId;
  throw new InstallStop({
    kind: "final",
    state: "unreachable",
    row,
    reason:
      "the Teams app (TeamsAppId) is not in the organization's app catalog, or not visible to Graph yet: publish it (a new upload can take hours to show), or set TeamsAppCatalogId",
  });
}
