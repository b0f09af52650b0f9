import { randomBytes, randomUUID } from "node:crypto";

import type { SimChannel, SimTeam, SimUser } from "./types";

/** Teams ids are opaque; these look like the real ones so code cannot lean on a pattern. */
function opaque(length: number): string {
  return randomBytes(Math.ceil((length * 3) / 4))
    .toString("base64url")
    .slice(0, length);
}

export const newUserId = (): string => `29:1${opaque(42)}`;
export const newPersonalConversationId = (): string => `a:1${opaque(60)}`;
export const newThreadId = (): string => `19:${randomBytes(16).toString("hex")}@thread.tacv2`;
export const newBotId = (): string => `28:${randomUUID()}`;

export interface NewUser {
  id?: string;
  /**
   * The user's tenant (default the simulator's). A user of another tenant is reachable in 1:1
   * chats only (teams stay in the simulator's tenant), and counts against that tenant's limits.
   */
  tenantId?: string;
  aadObjectId?: string;
  name?: string;
  givenName?: string;
  surname?: string;
  userPrincipalName?: string;
  email?: string;
  userRole?: SimUser["userRole"];
}

export interface NewTeam {
  name?: string;
  aadGroupId?: string;
  /** Existing users to put on the roster. */
  members?: readonly SimUser[];
  /** Generate this many new users and put them on the roster too. */
  memberCount?: number;
  /** Names of channels besides General. */
  channels?: readonly string[];
}

interface TeamState {
  readonly id: string;
  readonly name: string;
  readonly aadGroupId: string;
  readonly channels: SimChannel[];
  /** Insertion-ordered roster; a Map keeps paging stable and removal cheap. */
  readonly roster: Map<string, SimUser>;
}

export type ConversationKind = "personal" | "channel";

export interface ConversationInfo {
  readonly id: string;
  readonly kind: ConversationKind;
  /** The user of a 1:1. */
  readonly user?: SimUser;
  /** The team a channel belongs to. */
  readonly teamId?: string;
}

/** A tenant: its users, teams, and the conversations between them and the bot. */
export class Directory {
  private readonly users = new Map<string, SimUser>();
  private readonly byAad = new Map<string, SimUser>();
  private readonly byUpn = new Map<string, SimUser>();
  private readonly teams = new Map<string, TeamState>();
  /** Channel id -> team id. */
  private readonly channelTeam = new Map<string, string>();
  /** User id -> the 1:1 conversation id Teams answers for that user now. */
  private readonly personalIds = new Map<string, string>();
  /** Every 1:1 conversation id ever issued -> its user, including replaced ones. */
  private readonly personalConversations = new Map<string, SimUser>();
  /** 1:1 ids whose chat the user deleted: sends answer 404 ConversationNotFound. */
  readonly deletedConversations = new Set<string>();
  /** Tenants of users added with a `tenantId` other than the directory's. */
  private readonly otherTenants = new Set<string>();
  private userCounter = 0;
  private teamCounter = 0;

  constructor(readonly tenantId: string) {}

  addUser(input: NewUser = {}): SimUser {
    this.userCounter += 1;
    const n = this.userCounter;
    const name = input.name ?? `User ${String(n).padStart(5, "0")}`;
    const [first, ...rest] = name.split(" ");
    const givenName = input.givenName ?? first ?? name;
    const surname = input.surname ?? (rest.join(" ") || String(n));
    const upn =
      input.userPrincipalName ??
      `${name.toLowerCase().replace(/[^a-z0-9]+/g, ".")}.${n}@contoso.example`;
    const user: SimUser = {
      id: input.id ?? newUserId(),
      aadObjectId: input.aadObjectId ?? randomUUID(),
      name,
      givenName,
      surname,
      userPrincipalName: upn,
      email: input.email ?? upn,
      tenantId: input.tenantId ?? this.tenantId,
      userRole: input.userRole ?? "user",
    };
    if (this.users.has(user.id) || this.byAad.has(user.aadObjectId.toLowerCase()))
      throw new Error(`simulator: user ${user.id} / ${user.aadObjectId} already exists`);
    this.users.set(user.id, user);
    this.byAad.set(user.aadObjectId.toLowerCase(), user);
    this.byUpn.set(user.userPrincipalName.toLowerCase(), user);
    if (user.tenantId !== this.tenantId) this.otherTenants.add(user.tenantId);
    return user;
  }

  addUsers(count: number, input: Pick<NewUser, "tenantId"> = {}): SimUser[] {
    const users: SimUser[] = [];
    for (let i = 0; i < count; i += 1) users.push(this.addUser(input));
    return users;
  }

  /** Whether any user belongs to `tenantId` (the simulator's own tenant always exists). */
  hasTenant(tenantId: string): boolean {
    return tenantId === this.tenantId || this.otherTenants.has(tenantId);
  }

  /** By `29:` id, AAD object id or UPN (case-insensitive for the last two). */
  findUser(key: string): SimUser | undefined {
    return (
      this.users.get(key) ?? this.byAad.get(key.toLowerCase()) ?? this.byUpn.get(key.toLowerCase())
    );
  }

  allUsers(): SimUser[] {
    return [...this.users.values()];
  }

  addTeam(input: NewTeam = {}): SimTeam {
    this.teamCounter += 1;
    const id = newThreadId();
    const state: TeamState = {
      id,
      name: input.name ?? `Team ${this.teamCounter}`,
      aadGroupId: input.aadGroupId ?? randomUUID(),
      channels: [{ id, name: undefined }],
      roster: new Map(),
    };
    for (const channelName of input.channels ?? []) {
      const channelId = newThreadId();
      state.channels.push({ id: channelId, name: channelName });
      this.channelTeam.set(channelId, id);
    }
    for (const member of input.members ?? []) state.roster.set(member.id, member);
    for (const member of this.addUsers(input.memberCount ?? 0)) state.roster.set(member.id, member);
    this.teams.set(id, state);
    this.channelTeam.set(id, id);
    return this.teamView(state);
  }

  team(teamOrId: SimTeam | string): SimTeam | undefined {
    const state = this.teams.get(typeof teamOrId === "string" ? teamOrId : teamOrId.id);
    return state === undefined ? undefined : this.teamView(state);
  }

  addMembers(team: SimTeam | string, users: readonly SimUser[]): void {
    const state = this.requireTeam(team);
    for (const user of users) state.roster.set(user.id, user);
  }

  removeMembers(team: SimTeam | string, users: readonly SimUser[]): void {
    const state = this.requireTeam(team);
    for (const user of users) state.roster.delete(user.id);
  }

  /** The 1:1 id Teams answers for this user now (issued on first ask, then stable). */
  personalConversationId(user: SimUser): string {
    let id = this.personalIds.get(user.id);
    if (id === undefined) {
      id = newPersonalConversationId();
      this.personalIds.set(user.id, id);
      this.personalConversations.set(id, user);
    }
    return id;
  }

  /** The user deleted the chat: the old id answers 404 and the next create issues a new one. */
  deletePersonalConversation(user: SimUser): string | undefined {
    const id = this.personalIds.get(user.id);
    if (id === undefined) return undefined;
    this.personalIds.delete(user.id);
    this.deletedConversations.add(id);
    return id;
  }

  /** Resolves a conversation id from a URL (`;messageid=` thread suffixes are ignored). */
  conversation(rawId: string): ConversationInfo | undefined {
    const id = rawId.split(";")[0] ?? rawId;
    const user = this.personalConversations.get(id);
    if (user !== undefined) return { id, kind: "personal", user };
    const teamId = this.channelTeam.get(id);
    if (teamId !== undefined) return { id, kind: "channel", teamId };
    return undefined;
  }

  /** Members of a conversation in roster order: the user of a 1:1, the team of a channel. */
  members(conversation: ConversationInfo): SimUser[] {
    if (conversation.kind === "personal") return conversation.user ? [conversation.user] : [];
    const state = this.teams.get(conversation.teamId ?? "");
    return state === undefined ? [] : [...state.roster.values()];
  }

  /** Cheap membership check (no roster copy), by `29:` id or AAD object id. */
  memberOf(conversation: ConversationInfo, key: string): SimUser | undefined {
    const user = this.findUser(key);
    if (user === undefined) return undefined;
    if (conversation.kind === "personal")
      return conversation.user?.id === user.id ? user : undefined;
    return this.teams.get(conversation.teamId ?? "")?.roster.get(user.id);
  }

  /** A window of a conversation's roster without copying all of it. */
  memberPage(conversation: ConversationInfo, offset: number, size: number): SimUser[] {
    if (conversation.kind === "personal")
      return this.members(conversation).slice(offset, offset + size);
    const roster = this.teams.get(conversation.teamId ?? "")?.roster;
    if (roster === undefined) return [];
    const page: SimUser[] = [];
    let index = 0;
    for (const user of roster.values()) {
      if (index >= offset + size) break;
      if (index >= offset) page.push(user);
      index += 1;
    }
    return page;
  }

  memberCount(conversation: ConversationInfo): number {
    if (conversation.kind === "personal") return 1;
    return this.teams.get(conversation.teamId ?? "")?.roster.size ?? 0;
  }

  private requireTeam(team: SimTeam | string): TeamState {
    const state = this.teams.get(typeof team === "string" ? team : team.id);
    if (state === undefined) throw new Error("simulator: unknown team");
    return state;
  }

  private teamView(state: TeamState): SimTeam {
    return {
      id: state.id,
      name: state.name,
      aadGroupId: state.aadGroupId,
      generalChannelId: state.id,
      channels: state.channels,
      get members(): readonly SimUser[] {
        return [...state.roster.values()];
      },
    };
  }
}
