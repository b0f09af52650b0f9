import { ConfigError } from "../errors";
import { deliveryEvent } from "../events/event-factory";
import { isGraphError } from "../graph/graph-error";
import type { Logger } from "../logging";
import { aadGuardSubject, type Delivery, type DeliveryLedger } from "../store/delivery-ledger";
import { withEvents } from "../store/stored-events";
import type { UserReferenceStore } from "../store/user-references";
import type { WelcomeLedger } from "../store/welcome-ledger";
import type { EventOutbox } from "./event-outbox";
import {
  catalogAppId,
  goOrStop,
  graphLane,
  InstallProgress,
  type InstallStep,
  InstallStop,
} from "./install-step";
import { InstalledAppChat, type InstalledChatDependencies } from "./installed-chat";
import { metric } from "./metrics";
import { decide } from "./retry-policy";
import type { DeliveryWork } from "./work-items";

/** The work item without a reserved install slot: a retry waits for a fresh one. */
export function withoutInstallSlot(work: DeliveryWork): DeliveryWork {
  const { installSlotAt: _slot, ...rest } = work;
  return rest;
}

export type { InstallStep } from "./install-step";

/** What proactive install needs of the user references. */
export type InstallUserDirectory = Pick<
  UserReferenceStore,
  "findByAadObjectId" | "upsert" | "tenantServiceUrl"
>;

export interface ProactiveInstallDependencies extends Omit<
  InstalledChatDependencies,
  "ledger" | "chatWaitMs"
> {
  readonly users: InstallUserDirectory;
  readonly ledger: Pick<DeliveryLedger, "update" | "guarded">;
  readonly welcomes: Pick<WelcomeLedger, "noteHeraldInstall">;
  /** Records and publishes `herald.delivery.installed`. */
  readonly outbox: EventOutbox;
  /** How long after the install Teams may take to open the 1:1 chat (default 10 minutes). */
  readonly chatWaitMs?: number;
}

const DEFAULT_CHAT_WAIT_MS = 10 * 60 * 1000;

/**
 * Reaches a user Herald has never seen, one resumable step per delivery work item, with the step
 * on the delivery row:
 *
 * 1. resolve the recipient to an AAD object id (a UPN through `GET /users/{upn}`); a user known
 *    under that id already needs no install;
 * 2. mark the row `installing` with the person's install guard (a second name of one person in
 *    the request ends `duplicate` here: one install, one copy), note the install in the welcome
 *    ledger (no separate welcome for this user), install the app through Graph (201, or 409:
 *    already installed), mark the row `waiting-for-chat`;
 * 3. learn the 1:1 chat (installed-chat.ts).
 *
 * A crash anywhere redoes at most the step it was in: the install again answers 409. Graph
 * and Teams failures are never waited out in the function: the shared policy decides
 * (retry-policy.ts), and a retry is a scheduled work item. Every call is paced by the tenant's
 * runners (tenant-work.ts), Graph's limits and Teams' alike.
 */
export class ProactiveInstaller {
  private readonly chat: InstalledAppChat;

  constructor(private readonly deps: ProactiveInstallDependencies) {
    this.chat = new InstalledAppChat({
      ...deps,
      chatWaitMs: deps.chatWaitMs ?? DEFAULT_CHAT_WAIT_MS,
    });
  }

  async advance(work: DeliveryWork, row: Delivery, log: Logger): Promise<InstallStep> {
    const progress = new InstallProgress(row, this.deps.clock);
    let aadObjectId: string | undefined;
    try {
      const resolved = await this.resolveUser(work, row);
      aadObjectId = resolved.aadObjectId;
      const { upn } = resolved;
      if (row.state !== "waiting-for-chat") {
        // Named by UPN, the person may be known under their AAD id (seen in a team, say).
        if (upn !== undefined) {
          const known = await this.deps.users.findByAadObjectId(work.tenantId, aadObjectId);
          if (known !== undefined)
            return { kind: "ready", user: await this.chat.withUpn(known, upn), row };
        }
        const catalogId = await catalogAppId(this.deps.catalog(), row);
        await this.install(work, progress, aadObjectId, catalogId, log);
      }
      return await this.chat.find(work, progress, aadObjectId, upn, log);
    } catch (error) {
      if (error instanceof InstallStop) return error.step;
      const step = this.failure(error, work, progress.row);
      if (step === undefined) throw error;
      // Graph refused the install for good: the user's own install later is welcomed as usual.
      if (
        aadObjectId !== undefined &&
        !(step.kind === "decided" && step.decision.kind === "retry") &&
        isGraphError(error) &&
        error.operation === "installAppForUser"
      )
        await this.deps.welcomes.noteHeraldInstall(
          work.tenantId,
          aadObjectId,
          "failed",
          work.requestId,
        );
      return step;
    }
  }

  /** The recipient's AAD object id: given, found by an earlier step, or resolved from the UPN. */
  private async resolveUser(
    work: DeliveryWork,
    row: Delivery,
  ): Promise<{ aadObjectId: string; upn: string | undefined }> {
    const { recipient } = work;
    if (recipient.aadObjectId !== undefined)
      return { aadObjectId: recipient.aadObjectId, upn: undefined };
    const upn = recipient.userPrincipalName;
    if (upn === undefined)
      throw new InstallStop({
        kind: "final",
        state: "unreachable",
        row,
        reason:
          "a Teams user id Herald has never seen cannot be resolved through Microsoft Graph: name the user by aadObjectId or userPrincipalName",
      });
    if (row.aadObjectId !== undefined) return { aadObjectId: row.aadObjectId, upn };
    const found = await this.deps.graph().getUser(upn);
    if (found.kind === "not-found")
      throw new InstallStop({
        kind: "final",
        state: "unreachable",
        row,
        reason: "Microsoft Graph knows no user with this userPrincipalName in the tenant",
      });
    return { aadObjectId: found.user.id, upn: found.user.userPrincipalName ?? upn };
  }

  /**
   * Step 2: the row `installing` with the AAD id (so a later run asks Graph for it no more) and
   * the person's install guard, the welcome ledger's note, a slot under Graph's install limit,
   * the install; the row ends `waiting-for-chat`. A slot further off than a pacing wait is
   * reserved and the work comes back for it then: waiters queue for slots in order instead of
   * all asking again at once.
   */
  private async install(
    work: DeliveryWork,
    progress: InstallProgress,
    aadObjectId: string,
    catalogId: string,
    log: Logger,
  ): Promise<void> {
    if (progress.row.state !== "installing" || progress.row.aadObjectId === undefined) {
      // Resolved first, guarded before the install: two names of one person install once.
      const guarded = await this.deps.ledger.guarded(progress.row, aadGuardSubject(aadObjectId), {
        state: "installing",
        aadObjectId,
        lastError: undefined,
        nextAttemptAt: undefined,
      });
      if (guarded.kind === "guard-taken")
        throw new InstallStop({ kind: "same-person", of: guarded.by, row: progress.row });
      progress.written(guarded);
    }
    // Before every install call, after the row's write: the welcome the install's events queue
    // must find the note, so a crash between the two notes again rather than never.
    await this.deps.welcomes.noteHeraldInstall(
      work.tenantId,
      aadObjectId,
      "installing",
      work.requestId,
    );
    // The slot right before the call: writes in between would reach Graph with their jitter
    // and bunch paced installs into one of its 1 s windows (429s in the install bench).
    const slot = await this.deps.graphWork.reservedSlot(
      graphLane(work.tenantId, "install"),
      work.installSlotAt,
    );
    goOrStop(slot, progress.row, "queued for an install slot under Microsoft Graph's limits");
    const installed = await this.deps.graph().installAppForUser(aadObjectId, catalogId);
    await this.deps.welcomes.noteHeraldInstall(
      work.tenantId,
      aadObjectId,
      "installed",
      work.requestId,
    );
    if (installed.kind === "installed") {
      log.info("Installed the app for a user Herald had not seen");
      metric(log, "notifications.installed");
    } else {
      log.info("The app was already installed for a user Herald had not seen (409)");
    }
    const at = this.deps.clock();
    const waiting = {
      state: "waiting-for-chat" as const,
      installedAt: at.toISOString(),
      lastError: undefined,
      nextAttemptAt: undefined,
    };
    const fresh = this.deps.outbox.record(() => [
      deliveryEvent(
        "herald.delivery.installed",
        { ...progress.row, ...waiting },
        { at, correlationId: work.correlationId },
      ),
    ]);
    const written = await this.deps.ledger.update(progress.row, {
      ...waiting,
      events: withEvents(progress.row.events, fresh),
    });
    progress.written(written);
    if (written.kind === "written") await this.deps.outbox.publish(written.row, fresh);
  }

  /** A Graph failure as a step; undefined for anything else (rethrown: the broker redelivers). */
  private failure(error: unknown, work: DeliveryWork, row: Delivery): InstallStep | undefined {
    if (error instanceof ConfigError)
      return { kind: "final", state: "unreachable", row, reason: error.message };
    if (!isGraphError(error)) return undefined;
    const decision = decide({ source: "graph", error }, work.attempt, this.deps.policy);
    if (decision.kind === "retry" && decision.throttled)
      this.deps.graphWork.throttled(
        graphLane(row.tenantId, error.operation === "installAppForUser" ? "install" : "read"),
        undefined,
        decision.retryAfterMs,
      );
    return { kind: "decided", decision, row };
  }
}
