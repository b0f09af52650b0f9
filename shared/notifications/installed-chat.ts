import {
  type ConnectorFailure,
  describeFailure,
  type TeamsConnector,
} from "../connector/teams-connector";
import type { CatalogAppIds } from "../graph/catalog-app-ids";
import type { GraphPort } from "../graph/graph-port";
import type { Logger } from "../logging";
import type { Delivery, DeliveryLedger } from "../store/delivery-ledger";
import type { UserReference, UserReferenceStore } from "../store/user-references";
import {
  catalogAppId,
  goOrStop,
  graphLane,
  type InstallProgress,
  type InstallStep,
  InstallStop,
} from "./install-step";
import { decide, type RetryPolicy } from "./retry-policy";
import type { TenantWorkRunner } from "./tenant-work";
import type { DeliveryWork } from "./work-items";

/** What proactive install needs (proactive-install.ts adds the install's own writes). */
export interface InstalledChatDependencies {
  readonly graph: () => GraphPort;
  /** The app's catalog id, looked up once per process (or `TeamsAppCatalogId`). */
  readonly catalog: () => CatalogAppIds;
  readonly users: Pick<UserReferenceStore, "findByAadObjectId" | "upsert" | "tenantServiceUrl">;
  readonly ledger: Pick<DeliveryLedger, "update">;
  readonly connector: () => TeamsConnector;
  /**
   * Graph's Teams limits per tenant (graph-limits.ts), as the tenant's runner of Graph calls:
   * installs under `<tenant>|install`, installed-app reads under `<tenant>|read`.
   */
  readonly graphWork: TenantWorkRunner;
  /** The tenant's Teams calls (the member lookup is one). */
  readonly teamsWork: TenantWorkRunner;
  /** What a failed Graph or Teams call means (the same policy as a send's). */
  readonly policy: RetryPolicy;
  readonly clock: () => Date;
  /** How long after the install Teams may take to open the 1:1 chat. */
  readonly chatWaitMs: number;
}

/** How long after the install Teams' events are given before Graph is asked for the chat. */
const EVENTS_FIRST_MS = 1_000;
/** Checks for the chat start close together (Teams is usually quick) and spread out later. */
const FIRST_CHAT_CHECK_MS = 1_000;
const LONGEST_CHAT_CHECK_MS = 30_000;

/**
 * Proactive install's last step: the 1:1 chat of a user Herald installed the app for, learned
 * from whichever comes first: the reference the bot records from the install's
 * `conversationUpdate` (free, and usually within a second), or the installed app's chat in Graph
 * (two paced reads) with the member lookup that gives the user's `29:` id, recorded as a
 * reference. Until then the work comes back, sooner at first; past `chatWaitMs` it fails.
 */
export class InstalledAppChat {
  constructor(private readonly deps: InstalledChatDependencies) {}

  /** The reference if the chat is known by now; else when to look again. */
  async find(
    work: DeliveryWork,
    progress: InstallProgress,
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
      const user = await this.fromGraph(work, progress, aadObjectId, upn, serviceUrl, log);
      if (user !== undefined) return { kind: "ready", user, row: progress.row };
    }

    const row = progress.row;
    const now = this.deps.clock().getTime();
    const since = Date.parse(row.installedAt ?? "");
    const waited = Number.isFinite(since) ? Math.max(0, now - since) : 0;
    if (waited >= this.deps.chatWaitMs)
      return {
        kind: "final",
        state: "failed",
        row,
        reason: `the app is installed for the user, but Teams did not open the 1:1 chat with the bot within ${Math.round(this.deps.chatWaitMs / 60_000)} min`,
      };
    const delay = Math.min(LONGEST_CHAT_CHECK_MS, Math.max(FIRST_CHAT_CHECK_MS, waited / 2));
    return {
      kind: "later",
      row,
      at: new Date(now + delay),
      reason: "installed; waiting for Teams to open the 1:1 chat",
    };
  }

  /** A reference found by AAD id that lacks the UPN the request named: record it (no Graph next time). */
  async withUpn(user: UserReference, upn: string | undefined): Promise<UserReference> {
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

  /** Graph's way: the installation, its chat, the member; undefined when not there yet. */
  private async fromGraph(
    work: DeliveryWork,
    progress: InstallProgress,
    aadObjectId: string,
    upn: string | undefined,
    serviceUrl: string,
    log: Logger,
  ): Promise<UserReference | undefined> {
    const read = graphLane(work.tenantId, "read");
    let installationId = progress.row.installationId;
    if (installationId === undefined) {
      const catalogId = await catalogAppId(this.deps.catalog(), progress.row);
      await this.readSlot(read, progress.row);
      const installation = await this.deps.graph().findInstallation(aadObjectId, catalogId);
      if (installation.kind === "found") installationId = installation.installationId;
    }
    if (installationId === undefined) return undefined;
    await this.readSlot(read, progress.row);
    const chat = await this.deps.graph().getInstalledAppChat(aadObjectId, installationId);
    if (chat.kind === "found") {
      const user = await this.learnMember(
        work,
        serviceUrl,
        chat.chatId,
        aadObjectId,
        upn,
        progress.row,
        log,
      );
      if (user !== undefined) return user;
    }
    // Checked again later: keep the installation's id rather than asking Graph for it again.
    if (progress.row.installationId === undefined)
      progress.written(await this.deps.ledger.update(progress.row, { installationId }));
    return undefined;
  }

  /** A read slot now or soon, or `later` (reads are a check's two calls: never queued far ahead). */
  private async readSlot(key: string, row: Delivery): Promise<void> {
    goOrStop(await this.deps.graphWork.slot(key), row, "paced under Microsoft Graph's limits");
  }

  /** The user's `29:` id from the chat's member list, recorded as a reference. */
  private async learnMember(
    work: DeliveryWork,
    serviceUrl: string,
    chatId: string,
    aadObjectId: string,
    upn: string | undefined,
    row: Delivery,
    log: Logger,
  ): Promise<UserReference | undefined> {
    const tenantId = work.tenantId;
    goOrStop(await this.deps.teamsWork.slot(tenantId), row, "paced under Teams' limits");
    const found = await this.deps
      .connector()
      .getMember({ serviceUrl, conversationId: chatId, memberId: aadObjectId });
    if (found.kind !== "found") {
      if (found.kind === "throttled" || found.kind === "transient")
        throw this.lookupFailed(found, work, chatId, row);
      // Not a member (yet), or an id Teams does not take: the conversationUpdate still comes.
      log.warn(
        "Teams did not confirm the installed app's chat member; waiting for the install's events",
        { reason: describeFailure(found) },
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

  /** A member lookup Teams answered 429 or 5xx: the policy's decision, the pacer told. */
  private lookupFailed(
    failure: ConnectorFailure,
    work: DeliveryWork,
    chatId: string,
    row: Delivery,
  ): InstallStop {
    const decision = decide(
      {
        source: "teams",
        failure,
        context: "Teams could not look up the installed app's chat member",
      },
      work.attempt,
      this.deps.policy,
    );
    if (decision.kind === "retry" && decision.throttled)
      this.deps.teamsWork.throttled(work.tenantId, chatId, decision.retryAfterMs);
    return new InstallStop({ kind: "decided", decision, row });
  }
}
