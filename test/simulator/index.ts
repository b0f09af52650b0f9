/**
 * The Teams connector simulator: a local Bot Connector service for tests and benchmarks.
 * See docs/simulator.md.
 */
export type { ActivityBuilders, ChannelOptions, InstallAction } from "./activities";
export type { NewTeam, NewUser } from "./directory";
export { teamsError, type TeamsErrorBody } from "./faults";
export {
  type BlockOptions,
  startTeamsSimulator,
  TeamsSimulator,
  type TeamsSimulatorOptions,
} from "./simulator";
export type {
  ChatMessage,
  FaultRateSpec,
  FaultSpec,
  FaultStatus,
  PostedActivity,
  RecordedRequest,
  RouteName,
  SendResult,
  SimChannel,
  SimTeam,
  SimulatorStats,
  SimUser,
  TeamsActivity,
} from "./types";
export { ROUTE_NAMES } from "./types";
