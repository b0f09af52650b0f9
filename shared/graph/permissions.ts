/**
 * The Microsoft Graph application permissions (app roles) Herald's operations need, by
 * operation. `npm run grant:graph` grants them; a 403 names the one that is missing.
 * Least privilege per call, from the Graph API reference (https://learn.microsoft.com/graph/api/overview):
 * - `TeamsAppInstallation.ReadWriteSelfForUser.All`: install, find and read *this* app (the
 *   caller's own, matched through the manifest's `webApplicationInfo.id`) for any user; the
 *   installed app's `chat` is readable with it too;
 * - `User.Read.All`: read a user by UPN or id (id, UPN, display name, user type);
 * - `GroupMember.Read.All`: read a group's (transitive) members;
 * - `AppCatalog.Read.All`: only for finding the app in the org catalog by its manifest id;
 *   setting `TeamsAppCatalogId` makes that lookup, and this permission, unnecessary.
 */
export const GRAPH_PERMISSIONS = {
  installSelf: "TeamsAppInstallation.ReadWriteSelfForUser.All",
  readUsers: "User.Read.All",
  readGroupMembers: "GroupMember.Read.All",
  readAppCatalog: "AppCatalog.Read.All",
} as const;

export type GraphPermission = (typeof GRAPH_PERMISSIONS)[keyof typeof GRAPH_PERMISSIONS];

/** Every permission proactive install needs when `TeamsAppCatalogId` is set. */
export const REQUIRED_GRAPH_PERMISSIONS: readonly GraphPermission[] = [
  GRAPH_PERMISSIONS.installSelf,
  GRAPH_PERMISSIONS.readUsers,
  GRAPH_PERMISSIONS.readGroupMembers,
];

/** Herald's Graph operations (the methods of `GraphPort`). */
export type GraphOperation =
  | "getUser"
  | "findAppByExternalId"
  | "installAppForUser"
  | "findInstallation"
  | "getInstalledAppChat"
  | "listGroupUserMembers";

export const PERMISSION_FOR: Readonly<Record<GraphOperation, GraphPermission>> = {
  getUser: GRAPH_PERMISSIONS.readUsers,
  findAppByExternalId: GRAPH_PERMISSIONS.readAppCatalog,
  installAppForUser: GRAPH_PERMISSIONS.installSelf,
  findInstallation: GRAPH_PERMISSIONS.installSelf,
  getInstalledAppChat: GRAPH_PERMISSIONS.installSelf,
  listGroupUserMembers: GRAPH_PERMISSIONS.readGroupMembers,
};
