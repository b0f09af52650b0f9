/**
 * The Microsoft Graph simulator: users, the org app catalog, installs and their chats, groups.
 * A sibling of the Teams connector simulator (../simulator). See docs/graph-simulator.md.
 */
export {
  graphError,
  GraphSimulator,
  type GraphSimulatorOptions,
  startGraphSimulator,
} from "./simulator";
export type {
  CatalogApp,
  ChatAvailability,
  ChatState,
  GraphFaultSpec,
  GraphRecordedRequest,
  GraphRouteName,
  GraphSimGroup,
  GraphSimUser,
  GraphUserType,
  InstallActivities,
  InstallationRecord,
  NewGraphGroup,
  NewGraphUser,
  OtherMember,
  PostedInstallActivity,
} from "./types";
export { GRAPH_ROUTE_NAMES } from "./types";
