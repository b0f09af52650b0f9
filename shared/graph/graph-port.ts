/**
 * The narrow port Herald talks to Microsoft Graph through: exactly the calls proactive install
 * and group targeting need. Expected answers come back as `kind`-tagged values ("not-found" is
 * an answer, not a failure); every other outcome (429, 5xx, 403, timeouts, a malformed answer)
 * is thrown as a `GraphError` whose `kind` tells the caller what to do. The port never sleeps
 * and never retries: the caller schedules a retry as a work item, honouring `retryAfterMs`.
 */
export interface GraphPort {
  /** `GET /v1.0/users/{id | upn}`. */
  getUser(idOrUpn: string): Promise<GetUserResult>;
  /** `GET /v1.0/appCatalogs/teamsApps?$filter=externalId eq '{manifest id}'`. */
  findAppByExternalId(externalId: string): Promise<FindAppResult>;
  /** `POST /v1.0/users/{id}/teamwork/installedApps`: 201 installed, 409 already installed. */
  installAppForUser(userId: string, catalogAppId: string): Promise<InstallResult>;
  /** `GET /v1.0/users/{id}/teamwork/installedApps?$expand=teamsApp&$filter=teamsApp/id eq '{id}'`. */
  findInstallation(userId: string, catalogAppId: string): Promise<FindInstallationResult>;
  /**
   * `GET /v1.0/users/{id}/teamwork/installedApps/{installation id}/chat`. "not-found" while Teams
   * has not created the 1:1 chat yet (right after an install), or when the installation is gone.
   */
  getInstalledAppChat(userId: string, installationId: string): Promise<GetChatResult>;
  /**
   * One page of `GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user`. Pass the previous
   * page's `nextLink` to get the next; it is followed only if it is on the configured endpoint.
   */
  listGroupUserMembers(groupId: string, pageLink?: string): Promise<GroupMembersResult>;
}

/** `userType` as Graph reports it ("Member", "Guest"); absent for some service accounts. */
export interface GraphUser {
  readonly id: string;
  readonly userPrincipalName: string | undefined;
  readonly displayName: string | undefined;
  readonly userType: string | undefined;
}

export type GroupMember = GraphUser;

export type GetUserResult =
  { readonly kind: "found"; readonly user: GraphUser } | { readonly kind: "not-found" };

export type FindAppResult =
  { readonly kind: "found"; readonly catalogAppId: string } | { readonly kind: "not-found" };

export type InstallResult = { readonly kind: "installed" } | { readonly kind: "already-installed" };

export type FindInstallationResult =
  { readonly kind: "found"; readonly installationId: string } | { readonly kind: "not-found" };

export type GetChatResult =
  { readonly kind: "found"; readonly chatId: string } | { readonly kind: "not-found" };

export type GroupMembersResult =
  | {
      readonly kind: "page";
      readonly users: readonly GroupMember[];
      /** The next page's link, exactly as Graph gave it; undefined on the last page. */
      readonly nextLink: string | undefined;
    }
  | { readonly kind: "not-found" };
