import { randomUUID } from "node:crypto";

import type {
  CatalogApp,
  GraphSimGroup,
  GraphSimUser,
  NewGraphGroup,
  NewGraphUser,
  OtherMember,
} from "./types";

interface GroupState {
  readonly id: string;
  readonly displayName: string;
  readonly members: (GraphSimUser | GraphSimGroup | OtherMember)[];
}

function isUser(member: unknown): member is GraphSimUser {
  return typeof member === "object" && member !== null && "userPrincipalName" in member;
}

function isOther(member: unknown): member is OtherMember {
  return typeof member === "object" && member !== null && "kind" in member;
}

/** The directory of the simulated tenant: users, groups and the org app catalog. */
export class GraphDirectory {
  private readonly users = new Map<string, GraphSimUser>();
  private readonly byUpn = new Map<string, GraphSimUser>();
  private readonly groups = new Map<string, GroupState>();
  private readonly apps = new Map<string, CatalogApp>();
  private counter = 0;

  addUser(input: NewGraphUser = {}): GraphSimUser {
    this.counter += 1;
    const n = String(this.counter).padStart(5, "0");
    const teams = input.teamsUser;
    const user: GraphSimUser = {
      id: (input.id ?? teams?.aadObjectId ?? randomUUID()).toLowerCase(),
      userPrincipalName:
        input.userPrincipalName ?? teams?.userPrincipalName ?? `graph.user.${n}@contoso.example`,
      displayName: input.displayName ?? teams?.name ?? `Graph User ${n}`,
      userType: input.userType ?? (teams?.userRole === "guest" ? "Guest" : "Member"),
      teamsUser: teams,
    };
    if (this.users.has(user.id)) throw new Error(`graph simulator: user ${user.id} exists`);
    this.users.set(user.id, user);
    this.byUpn.set(user.userPrincipalName.toLowerCase(), user);
    return user;
  }

  /** Replaces a user's record (to attach the Teams user learned at install). */
  update(user: GraphSimUser): void {
    this.users.set(user.id, user);
    this.byUpn.set(user.userPrincipalName.toLowerCase(), user);
  }

  /** By object id or UPN, case-insensitive. */
  findUser(key: string): GraphSimUser | undefined {
    const lower = key.toLowerCase();
    return this.users.get(lower) ?? this.byUpn.get(lower);
  }

  addGroup(input: NewGraphGroup = {}): GraphSimGroup {
    this.counter += 1;
    const state: GroupState = {
      id: (input.id ?? randomUUID()).toLowerCase(),
      displayName: input.displayName ?? `Group ${this.counter}`,
      members: [...(input.members ?? [])],
    };
    for (let i = 0; i < (input.otherMemberCount ?? 0); i += 1)
      state.members.push({ kind: i % 2 === 0 ? "device" : "servicePrincipal", id: randomUUID() });
    this.groups.set(state.id, state);
    return { id: state.id, displayName: state.displayName };
  }

  addGroupMembers(
    group: GraphSimGroup | string,
    members: readonly (GraphSimUser | GraphSimGroup | OtherMember)[],
  ): void {
    const state = this.groups.get(typeof group === "string" ? group.toLowerCase() : group.id);
    if (state === undefined) throw new Error("graph simulator: unknown group");
    state.members.push(...members);
  }

  hasGroup(id: string): boolean {
    return this.groups.has(id.toLowerCase());
  }

  /**
   * Transitive members, users only, each once, in a stable order (depth first, direct members
   * first): what `/transitiveMembers/microsoft.graph.user` lists. Cycles are tolerated.
   */
  transitiveUsers(groupId: string): GraphSimUser[] {
    const seen = new Set<string>();
    const visited = new Set<string>();
    const result: GraphSimUser[] = [];
    const walk = (id: string): void => {
      if (visited.has(id)) return;
      visited.add(id);
      const state = this.groups.get(id);
      if (state === undefined) return;
      for (const member of state.members) {
        if (isOther(member)) continue;
        if (isUser(member)) {
          const current = this.users.get(member.id) ?? member;
          if (!seen.has(current.id)) {
            seen.add(current.id);
            result.push(current);
          }
        } else walk(member.id);
      }
    };
    walk(groupId.toLowerCase());
    return result;
  }

  publishApp(input: {
    externalId: string;
    id?: string;
    displayName?: string;
    published?: boolean;
  }): CatalogApp {
    const app: CatalogApp = {
      id: (input.id ?? randomUUID()).toLowerCase(),
      externalId: input.externalId.toLowerCase(),
      displayName: input.displayName ?? "Herald",
      published: input.published ?? true,
    };
    this.apps.set(app.id, app);
    return app;
  }

  app(catalogId: string): CatalogApp | undefined {
    return this.apps.get(catalogId.toLowerCase());
  }

  appsByExternalId(externalId: string): CatalogApp[] {
    return [...this.apps.values()].filter(
      (a) => a.published && a.externalId === externalId.toLowerCase(),
    );
  }
}
