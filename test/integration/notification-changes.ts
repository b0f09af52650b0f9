import { HttpRequest, type HttpResponseInit, InvocationContext } from "@azure/functions";

import { createNotificationsApi } from "../../shared/notifications/http-api";
import type { NotificationStatus } from "../../shared/notifications/status";
import type { SimUser } from "../simulator";
import type { NotificationsHarness } from "./notifications-harness";

/**
 * Update and recall through the real HTTP handlers (`PATCH` / `DELETE` on
 * `/api/notifications/{id}`, `PATCH` on `…/{id}/recipients/{recipient}`), and what the
 * simulator's chats show afterwards.
 */
export class NotificationChanges {
  private readonly api;

  constructor(private readonly h: NotificationsHarness) {
    this.api = createNotificationsApi(() => h.services);
  }

  update(id: string, body: unknown): Promise<HttpResponseInit> {
    return this.api.update(this.request("PATCH", id, JSON.stringify(body)), context());
  }

  /** One person's copy: `recipient` as the path names them (AAD id, UPN or Teams id). */
  updateRecipient(id: string, recipient: string, body: unknown): Promise<HttpResponseInit> {
    const request = this.request("PATCH", id, JSON.stringify(body), {
      path: `/recipients/${encodeURIComponent(recipient)}`,
      params: { recipient },
    });
    return this.api.updateRecipient(request, context());
  }

  recall(id: string): Promise<HttpResponseInit> {
    return this.api.recall(this.request("DELETE", id), context());
  }

  async status(id: string): Promise<NotificationStatus> {
    const status = await this.h.services.status.get(id, { tenantId: this.h.sim.tenantId });
    if (status === undefined) throw new Error(`no status for ${id}`);
    return status;
  }

  /** The texts the user sees in their chat with the bot now (deleted messages left out). */
  visible(user: SimUser): string[] {
    return this.h.sim
      .chatOf(user)
      .filter((m) => !m.deleted)
      .map((m) => m.text ?? "");
  }

  /** Users with any message they can still see. */
  keepingACopy(users: readonly SimUser[]): SimUser[] {
    return users.filter((u) => this.visible(u).length > 0);
  }

  private request(
    method: string,
    id: string,
    body?: string,
    sub: { path: string; params: Record<string, string> } = { path: "", params: {} },
  ): HttpRequest {
    return new HttpRequest({
      method,
      url: `https://herald.example/api/notifications/${id}${sub.path}?tenantId=${this.h.sim.tenantId}`,
      params: { id, ...sub.params },
      ...(body !== undefined ? { body: { string: body } } : {}),
    });
  }
}

function context(): InvocationContext {
  return new InvocationContext({ logHandler: () => {} });
}

/** Users known to Herald with a stored 1:1 chat, written in one go. */
export async function seedUsers(h: NotificationsHarness, count: number): Promise<SimUser[]> {
  const users = Array.from({ length: count }, () => h.sim.addUser());
  await h.users.upsertMany(
    users.map((u) => ({
      tenantId: h.sim.tenantId,
      teamsUserId: u.id,
      aadObjectId: u.aadObjectId,
      name: u.name,
      userPrincipalName: u.userPrincipalName,
      serviceUrl: h.sim.serviceUrl,
      conversationId: h.sim.personalConversationId(u),
      learnedFrom: "personal" as const,
    })),
  );
  return users;
}
