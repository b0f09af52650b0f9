import type {
  ConnectorFailure,
  CreateResult,
  DeleteResult,
  SentActivity,
  TeamsConnector,
  UpdateResult,
} from "../connector/teams-connector";
import type { Logger } from "../logging";
import type { MessageActivity } from "../model/message";
import type { UserReference, UserReferenceStore } from "../store/user-references";
import type { TenantWorkRunner } from "./tenant-work";

export interface TeamsOperationsDependencies {
  readonly connector: () => TeamsConnector;
  readonly users: Pick<UserReferenceStore, "setConversationId">;
  /** The tenant's Teams pacer: each call after the first of a piece of work waits here. */
  readonly work: TenantWorkRunner;
}

/** A notification's send, with the conversation it went to (stored, or created for it). */
export type SendOutcome =
  | { readonly kind: "sent"; readonly activityId: string; readonly conversationId: string }
  | (ConnectorFailure & { readonly conversationId: string | undefined });

/**
 * Herald's Teams operations on a user's 1:1 chat, one small unit each: create the conversation,
 * send, replace and delete an activity. Each is one call (Teams' answer comes back as a tagged
 * result, retry-policy.ts decides what it means); the caller takes the pacing slot of its first
 * call from the tenant's runner, and every further call of the same work waits for its own.
 */
export class TeamsOperations {
  constructor(private readonly deps: TeamsOperationsDependencies) {}

  /** Loads the connector (botbuilder: ~0.5 s on first use) before a slot is taken for it. */
  warm(): void {
    this.deps.connector();
  }

  /**
   * `POST /v3/conversations`: the user's 1:1 chat, stored on their reference for reuse. A 404 on
   * create is no deleted chat: Teams does not know the user or tenant, so it is `failed`.
   */
  async createConversation(
    tenantId: string,
    user: UserReference,
    log: Logger,
  ): Promise<CreateResult> {
    const hooks = await this.deps.work.beforeCall(tenantId);
    const created = await this.deps
      .connector()
      .createPersonalConversation(
        { serviceUrl: user.serviceUrl, tenantId, teamsUserId: user.teamsUserId },
        hooks,
      );
    if (created.kind === "created") {
      await this.deps.users.setConversationId(tenantId, user.teamsUserId, created.conversationId);
      log.info("Created the 1:1 conversation and stored its id");
      return created;
    }
    return created.kind === "conversationGone" ? { ...created, kind: "failed" } : created;
  }

  /** `PUT …/activities/{activityId}`: the sent activity replaced in place. */
  async updateActivity(
    tenantId: string,
    sent: SentActivity,
    activity: MessageActivity,
  ): Promise<UpdateResult> {
    const hooks = await this.deps.work.beforeCall(tenantId);
    return this.deps.connector().updateActivity({ ...sent, activity }, hooks);
  }

  /** `DELETE …/activities/{activityId}`. */
  async deleteActivity(tenantId: string, sent: SentActivity): Promise<DeleteResult> {
    const hooks = await this.deps.work.beforeCall(tenantId);
    return this.deps.connector().deleteActivity(sent, hooks);
  }

  /**
   * A notification into the user's 1:1 chat: the stored one, or one created (and stored)
   * first. A stored chat the user deleted (404) is forgotten, created again once, and sent to:
   * never a dead id kept (Company Communicator's classic bug), never a loop. The caller holds
   * the slot of the first call.
   */
  async send(
    tenantId: string,
    user: UserReference,
    activity: MessageActivity,
    log: Logger,
  ): Promise<SendOutcome> {
    let conversationId = user.conversationId;
    let fresh = false;
    if (conversationId === undefined) {
      const created = await this.createThenWait(tenantId, user, log);
      if (created.kind !== "created") return { ...created, conversationId: undefined };
      conversationId = created.conversationId;
      fresh = true;
    }
    let result = await this.post(tenantId, user, conversationId, activity);
    if (result.kind === "conversationGone" && !fresh) {
      log.warn("Stored 1:1 conversation is gone (404); creating it again once", {
        code: result.code,
      });
      await this.deps.users.setConversationId(tenantId, user.teamsUserId, undefined);
      await this.deps.work.waitForSlot(tenantId);
      const created = await this.createThenWait(tenantId, user, log);
      if (created.kind !== "created") return { ...created, conversationId: undefined };
      conversationId = created.conversationId;
      result = await this.post(tenantId, user, conversationId, activity);
    }
    if (result.kind === "sent") return { ...result, conversationId };
    if (result.kind === "conversationGone")
      return {
        ...result,
        kind: "failed",
        conversationId,
        message: `conversation not found right after creating it: ${result.message}`,
      };
    return { ...result, conversationId };
  }

  /** A create, then the wait for the slot of the send that follows it. */
  private async createThenWait(
    tenantId: string,
    user: UserReference,
    log: Logger,
  ): Promise<CreateResult> {
    const created = await this.createConversation(tenantId, user, log);
    // The send that follows is a second call against the tenant's (and the chat's) budget.
    if (created.kind === "created")
      await this.deps.work.waitForSlot(tenantId, created.conversationId);
    return created;
  }

  private async post(
    tenantId: string,
    user: UserReference,
    conversationId: string,
    activity: MessageActivity,
  ) {
    const hooks = await this.deps.work.beforeCall(tenantId);
    return this.deps
      .connector()
      .sendActivity({ serviceUrl: user.serviceUrl, conversationId, activity }, hooks);
  }
}
