/** Shapes the Graph simulator hands to tests. */
import type { GraphPermission } from "../../shared/graph/permissions";
import type { SimUser } from "../simulator";

/** The Graph routes the simulator serves, by the name faults, counts and records use. */
export type GraphRouteName =
  | "getUser"
  | "listCatalogApps"
  | "installApp"
  | "listInstalledApps"
  | "getInstalledAppChat"
  | "listGroupUserMembers"
  | "unknown";

export const GRAPH_ROUTE_NAMES: readonly GraphRouteName[] = [
  "getUser",
  "listCatalogApps",
  "installApp",
  "listInstalledApps",
  "getInstalledAppChat",
  "listGroupUserMembers",
  "unknown",
];

export type GraphUserType = "Member" | "Guest";

export interface GraphSimUser {
  /** AAD object id (Graph's `id`). */
  readonly id: string;
  readonly userPrincipalName: string;
  readonly displayName: string;
  readonly userType: GraphUserType;
  /** The same person in the linked Teams simulator, once known. */
  readonly teamsUser: SimUser | undefined;
}

export interface NewGraphUser {
  id?: string;
  userPrincipalName?: string;
  displayName?: string;
  userType?: GraphUserType;
  /** Link to an existing Teams simulator user: id and UPN are taken from it. */
  teamsUser?: SimUser;
}

/** A member of a group that is neither a user nor a group (the user cast filters it out). */
export interface OtherMember {
  readonly kind: "device" | "servicePrincipal" | "orgContact";
  readonly id: string;
}

export interface GraphSimGroup {
  readonly id: string;
  readonly displayName: string;
}

export interface NewGraphGroup {
  id?: string;
  displayName?: string;
  /** Direct members: users, nested groups (their members count as transitive), other objects. */
  members?: readonly (GraphSimUser | GraphSimGroup | OtherMember)[];
  /** This many devices / service principals among the direct members (filtered by the cast). */
  otherMemberCount?: number;
}

export interface CatalogApp {
  /** Graph's generated catalog id (`teamsApp.id`). */
  readonly id: string;
  /** The manifest id. */
  readonly externalId: string;
  readonly displayName: string;
  /** False: uploaded but not yet visible in Graph (it can take hours). */
  published: boolean;
}

export interface InstallationRecord {
  readonly id: string;
  readonly userId: string;
  readonly catalogAppId: string;
  readonly installedAt: number;
}

/** Where the installed app's chat stands for one user. */
export type ChatState =
  | { readonly kind: "available"; readonly chatId: string }
  /** 404 until `sim.makeChatAvailable(user)` (Teams has not created the chat yet). */
  | { readonly kind: "pending"; readonly chatId: string };

export interface GraphRecordedRequest {
  readonly method: string;
  /** Path as received (URL-encoded). */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly route: GraphRouteName;
  /** Whether an `Authorization: Bearer …` header came (the value is never kept). */
  readonly hasAuthorization: boolean;
  readonly body: unknown;
  /** Status answered; 0 while pending. */
  status: number;
  outcome: "handled" | "fault" | "rateLimited" | "forbidden" | "pending";
  readonly at: number;
}

export interface GraphFaultSpec {
  /** HTTP status (200 together with `rawBody` makes a malformed success). */
  status: number;
  /** Graph error code in the body (a default per status). */
  code?: string;
  /** `Retry-After` header: seconds, or an HTTP date string; 429 defaults to 1, null sends none. */
  retryAfter?: number | string | null;
  /** How many matching requests get this answer (default 1). */
  times?: number;
  /** Replaces the JSON body. */
  body?: unknown;
  /** Sent as is instead of JSON (e.g. "<html>" to test a malformed answer). */
  rawBody?: string;
}

/** An activity the simulator posted to the bot after an install. */
export interface PostedInstallActivity {
  readonly userId: string;
  readonly type: "installationUpdate" | "conversationUpdate";
  readonly conversationId: string;
  /** Status the bot answered; -1 when the post failed. */
  readonly status: number;
  readonly at: number;
}

export type InstallActivities =
  /** Post both activities right after the 201 (after `delayMs`). */
  | "immediate"
  /** Hold them until `sim.releaseInstallActivities()`: "the chat arrives first". */
  | "manual"
  | "off";

export type ChatAvailability =
  /** The chat exists as soon as the install does. */
  | "at-install"
  /** 404 until the install activities have been posted: "the conversationUpdate arrives first". */
  | "after-activities"
  /** 404 until `sim.makeChatAvailable(user)`. */
  | "manual";

export type { GraphPermission };
