import type { ConnectorFailure, TeamsConnector } from "../connector/teams-connector";
import { describeFailure } from "../connector/teams-connector";
import { ConfigError } from "../errors";
import type { CatalogAppIds } from "../graph/catalog-app-ids";
import { isGraphError } from "../graph/graph-error";
import type { GraphPort } from "../graph/graph-port";
import type { Logger } from "../logging";
import type { Delivery, DeliveryLedger, DeliveryPatch } from "../store/delivery-ledger";
import type { UserReference, UserReferenceStore } from "../store/user-references";
import type { WelcomeLedger } from "../store/welcome-ledger";
import { metric } from "./metrics";
import type { Pacer } from "./pacing";
import type { DeliveryWork } from "./work-items";

/** What proactive install needs of the user references. */
export type InstallUserDirectory = Pick<
  UserReferenceStore,
  "findByAadObjectId" | "upsert" | "tenantServiceUrl"
>;

export interface ProactiveInstallDependencies {
  readonly graph: () => GraphPort;
  /** The app's catalog id, looked up once per process (or `TeamsAppCatalogId`). */
  readonly catalog: () => CatalogAppIds;
  readonly users: InstallUserDirectory;
  readonly ledger: Pick<DeliveryLedger, "update">;
  readonly welcomes: Pick<WelcomeLedger, "noteHeraldInstall">;
  readonly connector: () => TeamsConnector;
  /**
   * Graph's Teams limits per tenant (graph-limits.ts): installs under `<tenant>|install`,
   * installed-app reads under `<tenant>|read`. Undefined: not paced (benchmarks of raw overhead).
   */
  readonly graphPacer: Pacer | undefined;
  /** The tenant's Teams pacer (the member lookup is a Teams call). */
  readonly teamsPacer: Pacer | undefined;
  readonly sleep: (ms: number) => Promise<void>;
  readonly clock: () => Date;
  /** Longest pacing wait spent inside the function; a longer one checks again later. */
  readonly maxPaceWaitMs: number;
  /** How long after the install Teams may take to open the 1:1 chat (default 10 minutes). */
  readonly chatWaitMs?: number;
}

/**
 * Where a never-seen recipient's install stands after one step:
 * - `ready`: Herald has the user's reference now (with the 1:1 chat): send as to anyone;
 * - `unreachable` / `failed`: final, with the reason;
 * - `retry`: Graph or Teams failed in a way a later attempt may not (429, 5xx): the caller
 *   schedules the next attempt after `retryAfterMs` or its back-off, within the attempt budget;
 * - `later`: nothing failed, it is just not time yet (pacing, the chat not opened yet, another
 *   invocation's write): the same attempt runs again at `at`.
 */
export type InstallStep =
  | { readonly kind: "ready"; readonly user: UserReference; readonly row: Delivery }
  | { readonly kind: "unreachable"; readonly reason: string; readonly row: Delivery }
  | { readonly kind: "failed"; readonly reason: string; readonly row: Delivery }
  | {
      readonly kind: "retry";
      readonly reason: string;
      readonly retryAfterMs: number | undefined;
      readonly row: Delivery;
    }
  | {
      readonly kind: "later";
      readonly at: Date;
      readonly reason: string;
      readonly row: Delivery;
      /** The install slot reserved for this recipient at `at`: the next run uses it. */
      readonly installSlotAt?: Date;
    };

const DEFAULT_CHAT_WAIT_MS = 10 * 60 * 1000;
/** How long after the install Teams' events are given before Graph is asked for the chat. */
const EVENTS_FIRST_MS = 1_000;
/** Checks for the chat start close together (Teams is usually quick) and spread out later. */
const FIRST_CHAT_CHECK_MS = 1_000;
const LONGEST_CHAT_CHECK_MS = 30_000;
/** A row changed under us (a redelivered copy): look again after this long. */
const RACE_RECHECK_MS = 5_000;

/** A step that ended the flow early; thrown inside a step, caught at its top (never escapes). */
class Stop extends Error {
  constructor(readonly step: InstallStep) {
    super(`proactive install stopped: ${step.kind}`);
  }
}

/**
 * Reaches a user Herald has never seen (DESIGN.md "Users Herald has never seen"), one resumable
 * step per delivery work item, with the step on the delivery row:
 *
 * 1. resolve the recipient to an AAD object id (a UPN through `GET /users/{upn}`); a user known
 *    under that id already needs no install;
 * 2. note the install in the welcome ledger (no separate welcome for this user), mark the row
 *    `installing`, install the app through Graph (201, or 409: already installed), mark the row
 *    `waiting-for-chat`;
 * 3. learn the 1:1 chat from whichever comes first: the reference the bot records from the
 *    install's `conversationUpdate`, or the installed app's chat in Graph (with the tenant's known
 *    service URL and the member lookup that gives the user's `29:` id), recorded as a reference.
 *
 * A crash anywhere redoes at most the step it was in: the install again answers 409. Graph
 * failures are never waited out in the function: throttling and 5xx come back as `retry`.
 */
export class ProactiveInstaller {
  private readonly chatWaitMs: number;

  constructor(private readonly deps: ProactiveInstallDependencies) {
    this.chatWaitMs = deps.chatWaitMs ?? DEFAULT_CHAT_WAIT_MS;
  }

  async advance(work: DeliveryWork, row: Delivery, log: Logger): Promise<InstallStep> {
    // The latest row, as this step's writes leave it (a failure is recorded on that one).
    const progress = { row };
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
            return { kind: "ready", user: await this.withUpn(known, upn), row };
        }
        const catalogAppId = await this.catalogAppId(row);
        await this.install(work, progress, aadObjectId, catalogAppId, log);
      }
      return await this.findChat(work, progress, aadObjectId, upn, log);
    } catch (error) {
      if (error instanceof Stop) return error.step;
      const step = this.failure(error, progress.row);
      if (step === undefined) throw error;
      // Graph refused the install for good: the user's own install later is welcomed as usual.
      if (
        aadObjectId !== undefined &&
        step.kind !== "retry" &&
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
      throw new Stop({
        kind: "unreachable",
        row,
        reason:
          "a Teams user id Herald has never seen cannot be resolved through Microsoft Graph: name the user by aadObjectId or userPrincipalName",
      });
    if (row.aadObjectId !== undefined) return { aadObjectId: row.aadObjectId, upn };
    const found = await this.deps.graph().getUser(upn);
    if (found.kind === "not-found")
      throw new Stop({
        kind: "unreachable",
        row,
        reason: "Microsoft Graph knows no user with this userPrincipalName in the tenant",
      });
    return { aadObjectId: found.user.id, upn: found.user.userPrincipalName ?? upn };
  }

  private async catalogAppId(row: Delivery): Promise<string> {
    const app = await this.deps.catalog().resolve();
    if (app.kind === "found") return app.catalogAppId;
    throw new Stop({
      kind: "unreachable",
      row,
      reason:
        "the Teams app (TeamsAppId) is not in the organization's app catalog, or not visible to Graph yet: publish it (a new upload can take hours to show), or set TeamsAppCatalogId",
    });
  }

  /**
   * Step 2: the row `installing` (with the AAD id, so a later run asks Graph for it no more),
   * a slot under Graph's install limit, the welcome ledger's note, the install; the row ends
   * `waiting-for-chat`. A slot further off than a pacing wait is reserved and the work comes
   * back for it then: waiters queue for slots in order instead of all asking again at once.
   */
  private async install(
    work: DeliveryWork,
    progress: { row: Delivery },
    aadObjectId: string,
    catalogAppId: string,
    log: Logger,
  ): Promise<void> {
    if (progress.row.state !== "installing" || progress.row.aadObjectId === undefined) {
      // Before the install: the welcome its events queue must find the note. Noted first, so
      // a row that says `installing` always has its note (a crash in between notes again).
      await this.deps.welcomes.noteHeraldInstall(
        work.tenantId,
        aadObjectId,
        "installing",
        work.requestId,
      );
      await this.update(progress, {
        state: "installing",
        aadObjectId,
        lastError: undefined,
        nextAttemptAt: undefined,
      });
    }
    // The slot right before the call: writes in between would reach Graph with their jitter
    // and bunch paced installs into one of its 1 s windows (429s in the install bench).
    await this.installSlot(work, progress.row);
    const installed = await this.deps.graph().installAppForUser(aadObjectId, catalogAppId);
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
    await this.update(progress, {
      state: "waiting-for-chat",
      installedAt: this.deps.clock().toISOString(),
      lastError: undefined,
      nextAttemptAt: undefined,
    });
  }

  /** Takes the slot this work reserved earlier, or the next one (waiting if it is close). */
  private async installSlot(work: DeliveryWork, row: Delivery): Promise<void> {
    const pacer = this.deps.graphPacer;
    if (pacer === undefined) return;
    const now = this.deps.clock().getTime();
    const reserved = work.installSlotAt === undefined ? NaN : Date.parse(work.installSlotAt);
    if (Number.isFinite(reserved)) {
      if (reserved - now > 0 && reserved - now <= this.deps.maxPaceWaitMs)
        await this.deps.sleep(reserved - now);
      if (reserved - now <= this.deps.maxPaceWaitMs) return;
    }
    const grant = pacer.reserve(`${work.tenantId.toLowerCase()}|install`);
    if (grant.delayMs <= this.deps.maxPaceWaitMs) {
      if (grant.delayMs > 0) await this.deps.sleep(grant.delayMs);
      return;
    }
    const at = new Date(now + grant.delayMs);
    throw new Stop({
      kind: "later",
      row,
      at,
      installSlotAt: at,
      reason: "queued for an install slot under Microsoft Graph's limits",
    });
  }

  /** Step 3: the reference if the chat is known by now; else when to look again. */
  private async findChat(
    work: DeliveryWork,
    progress: { row: Delivery },
    aadObjectId: string,
    upn: string | undefined,
    log: Logger,
  ): Promise<InstallStep> {
    const tenantId = work.tenantId;
    // The bot recorded the install's conversationUpdate meanwhile (the usual way).
    const recorded = await this.deps.users.findByAadObjectId(tenantId, aadObjectId);
    if (recorded !== undefined)
      return { kind: "ready", user: await this.withUpn(recorded, upn), row: progress.row };

    const installedAt = Date.parse(progress.row.installedAt ?? "");
    const justInstalled =
      Number.isFinite(installedAt) && this.deps.clock().getTime() - installedAt < EVENTS_FIRST_MS;
    // Graph's chat needs a service URL to send to: the tenant's, from anyone Herald knows there.
    // Not right after the install: Teams' events usually come within a second and cost nothing,
    // while Graph's way costs two paced reads (at 30/s they would cap installs at 15/s).
    const serviceUrl = justInstalled ? undefined : await this.deps.users.tenantServiceUrl(tenantId);
    if (serviceUrl !== undefined) {
      const read = `${tenantId.toLowerCase()}|read`;
      let installationId = progress.row.installationId;
      if (installationId === undefined) {
        const catalogAppId = await this.catalogAppId(progress.row);
        this.graphReadSlot(read, progress.row);
        const installation = await this.deps.graph().findInstallation(aadObjectId, catalogAppId);
        if (installation.kind === "found") installationId = installation.installationId;
      }
      if (installationId !== undefined) {
        this.graphReadSlot(read, progress.row);
        const chat = await this.deps.graph().getInstalledAppChat(aadObjectId, installationId);
        if (chat.kind === "found") {
          const user = await this.learnMember(
            tenantId,
            serviceUrl,
            chat.chatId,
            aadObjectId,
            upn,
            progress.row,
            log,
          );
          if (user !== undefined) return { kind: "ready", user, row: progress.row };
        }
        // Checked again later: keep the installation's id rather than asking Graph for it again.
        if (progress.row.installationId === undefined)
          await this.update(progress, { installationId });
      }
    }

    const row = progress.row;
    const now = this.deps.clock().getTime();
    const since = Date.parse(row.installedAt ?? "");
    const waited = Number.isFinite(since) ? Math.max(0, now - since) : 0;
    if (waited >= this.chatWaitMs)
      return {
        kind: "failed",
        row,
        reason: `the app is installed for the user, but Teams did not open the 1:1 chat with the bot within ${Math.round(this.chatWaitMs / 60_000)} min`,
      };
    const delay = Math.min(LONGEST_CHAT_CHECK_MS, Math.max(FIRST_CHAT_CHECK_MS, waited / 2));
    return {
      kind: "later",
      row,
      at: new Date(now + delay),
      reason: "installed; waiting for Teams to open the 1:1 chat",
    };
  }

  /** A read slot now, or `later` (reads are a check's two calls: never queued far ahead). */
  private graphReadSlot(key: string, row: Delivery): void {
    const grant = this.deps.graphPacer?.reserve(key, undefined, this.deps.maxPaceWaitMs);
    if (grant === undefined || grant.granted) return;
    throw new Stop({
      kind: "later",
      row,
      at: new Date(this.deps.clock().getTime() + grant.delayMs),
      reason: "paced under Microsoft Graph's limits",
    });
  }

  /** The user's `29:` id from the chat's member list, recorded as a reference. */
  private async learnMember(
    tenantId: string,
    serviceUrl: string,
    chatId: string,
    aadObjectId: string,
    upn: string | undefined,
    row: Delivery,
    log: Logger,
  ): Promise<UserReference | undefined> {
    await this.teamsSlot(tenantId, row);
    const found = await this.deps
      .connector()
      .getMember({ serviceUrl, conversationId: chatId, memberId: aadObjectId });
    if (found.kind !== "found") {
      if (found.kind === "throttled" || found.kind === "transient")
        throw this.teamsRetry(found, row);
      // Not a member (yet), or an id Teams does not take: the conversationUpdate still comes.
      log.warn(
        "Teams did not confirm the installed app's chat member; waiting for the install's events",
        {
          reason: describeFailure(found),
        },
      );
      return undefined;
    }
    const { member } = found;
    // Only the person asked for, by their Teams user id: anything else is not this user's chat.
    if (
      !member.teamsUserId.startsWith("29:") ||
      (member.aadObjectId !== undefined &&
        member.aadObjectId.toLowerCase() !== aadObjectId.toLowerCase())
    ) {
      log.warn(
        "Teams named another member for the installed app's chat; waiting for the install's events",
      );
      return undefined;
    }
    const { reference } = await this.deps.users.upsert({
      tenantId,
      teamsUserId: member.teamsUserId,
      aadObjectId: member.aadObjectId ?? aadObjectId,
      name: member.name,
      userPrincipalName: member.userPrincipalName ?? upn,
      email: member.email,
      serviceUrl,
      conversationId: chatId,
      learnedFrom: "personal",
    });
    log.info("Learned the 1:1 chat of a user Herald installed the app for, from Graph");
    return reference;
  }

  /** A reference found by AAD id that lacks the UPN the request named: record it (no Graph next time). */
  private async withUpn(user: UserReference, upn: string | undefined): Promise<UserReference> {
    if (upn === undefined || user.userPrincipalName !== undefined) return user;
    const { reference } = await this.deps.users.upsert({
      tenantId: user.tenantId,
      teamsUserId: user.teamsUserId,
      userPrincipalName: upn,
      serviceUrl: user.serviceUrl,
      learnedFrom: user.learnedFrom,
      // Not a fresher sighting of the service URL: never let it win over a newer one.
      observedAt: new Date(0),
    });
    return reference;
  }

  /** The tenant's next Teams slot if it comes soon (waited for); else stops with `later`. */
  private async teamsSlot(tenantId: string, row: Delivery): Promise<void> {
    const grant = this.deps.teamsPacer?.reserve(tenantId, undefined, this.deps.maxPaceWaitMs);
    if (grant === undefined) return;
    if (grant.granted) {
      if (grant.delayMs > 0) await this.deps.sleep(grant.delayMs);
      return;
    }
    throw new Stop({
      kind: "later",
      row,
      at: new Date(this.deps.clock().getTime() + grant.delayMs),
      reason: "paced under Teams' limits",
    });
  }

  private async update(progress: { row: Delivery }, patch: DeliveryPatch): Promise<Delivery> {
    const updated = await this.deps.ledger.update(progress.row, patch);
    if (updated !== "conflict") {
      progress.row = updated;
      return updated;
    }
    throw new Stop({
      kind: "later",
      row: progress.row,
      at: new Date(this.deps.clock().getTime() + RACE_RECHECK_MS),
      reason: "another invocation changed this delivery; looking again",
    });
  }

  private teamsRetry(failure: ConnectorFailure, row: Delivery): Stop {
    const retryAfterMs = "retryAfterMs" in failure ? failure.retryAfterMs : undefined;
    return new Stop({
      kind: "retry",
      row,
      retryAfterMs,
      reason: `Teams could not look up the installed app's chat member: ${describeFailure(failure)}`,
    });
  }

  /** A Graph failure as a step; undefined for anything else (rethrown: the broker redelivers). */
  private failure(error: unknown, row: Delivery): InstallStep | undefined {
    if (error instanceof ConfigError) return { kind: "unreachable", row, reason: error.message };
    if (!isGraphError(error)) return undefined;
    const reason = error.message;
    if (error.kind === "throttled") {
      this.deps.graphPacer?.throttled(
        `${row.tenantId.toLowerCase()}|${error.operation === "installAppForUser" ? "install" : "read"}`,
        undefined,
        error.retryAfterMs,
      );
      return { kind: "retry", row, reason, retryAfterMs: error.retryAfterMs };
    }
    // Transient, or an answer Herald could not read (a proxy's page): a later attempt may pass.
    if (error.retryable) return { kind: "retry", row, reason, retryAfterMs: error.retryAfterMs };
    if (error.kind === "forbidden") return { kind: "unreachable", row, reason };
    if (error.kind === "not-found")
      return {
        kind: "unreachable",
        row,
        reason: `${reason}: Microsoft Graph knows no such user in the tenant`,
      };
    return { kind: "failed", row, reason };
  }
}
