import type { GraphPort } from "../graph/graph-port";

/** A member as Graph names them: the id Herald delivers by, and who they are, for the status. */
export interface GroupMemberName {
  readonly aadObjectId: string;
  readonly userPrincipalName?: string | undefined;
  readonly displayName?: string | undefined;
}

/** An Entra group's user members, as fan-out needs them. */
export interface GroupDirectory {
  /**
   * The group's transitive user members, every page (Graph's `@odata.nextLink`), guests only
   * with `includeGuests`. Throws the port's GraphError (throttled, forbidden, …) or
   * GroupNotFoundError for the caller to record or schedule again.
   */
  members(groupId: string, includeGuests: boolean): AsyncIterable<GroupMemberName>;
}

/** The group directory over Microsoft Graph (`GET /groups/{id}/transitiveMembers/microsoft.graph.user`). */
export function graphGroupDirectory(graph: () => GraphPort): GroupDirectory {
  return {
    members(groupId, includeGuests) {
      return (async function* () {
        let next: string | undefined;
        do {
          const page = await graph().listGroupUserMembers(groupId, next);
          if (page.kind === "not-found") throw new GroupNotFoundError();
          for (const user of page.users)
            if (includeGuests || user.userType?.toLowerCase() !== "guest")
              yield {
                aadObjectId: user.id,
                userPrincipalName: user.userPrincipalName,
                displayName: user.displayName,
              };
          next = page.nextLink;
        } while (next !== undefined);
      })();
    },
  };
}

/** Graph answered 404 for the group. */
export class GroupNotFoundError extends Error {
  constructor() {
    super("Entra group not found (deleted, or not in this tenant)");
  }
}
