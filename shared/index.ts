/**
 * Herald's package entry point for line-of-business apps: `import { NotificationClient } from
 * "herald"`. Only the client, the request schema and the status types: loading it never pulls
 * in botbuilder or the table stores (Service Bus and identity load on the first Service Bus send).
 */
export {
  type BulkFile,
  type BulkRequest,
  type InvalidLine,
  parseBulkLines,
  readBulkFile,
} from "./client/bulk-file";
export {
  type ChangeAnswer,
  type NotificationChange,
  type RecallInput,
  type UpdateInput,
} from "./client/changes";
export {
  ChangeRefusedError,
  formatIssue,
  HttpResponseError,
  NotificationNotFoundError,
  NotificationSendError,
  RecipientNotFoundError,
  RequestConflictError,
  type RequestIssue,
  RequestValidationError,
} from "./client/client-errors";
export { type FetchLike, type StatusOptions } from "./client/http-transport";
export {
  NotificationClient,
  type NotificationClientOptions,
  type NotificationClientTarget,
  type SendManyOptions,
  type WaitOptions,
  type WaitResult,
} from "./client/notification-client";
export { type NotificationRequestInput, prepareRequest } from "./client/prepare-request";
export { type RecipientChangeAnswer, type RecipientUpdateInput } from "./client/recipient-changes";
export { requestMessageId } from "./client/transport";
export { HeraldError, ValidationError } from "./errors";
export {
  type FieldError,
  MAX_RECIPIENTS,
  type NotificationMessage,
  type NotificationRecall,
  type NotificationRequest,
  notificationRequestJsonSchema,
  notificationRequestSchema,
  type NotificationUpdate,
  parseNotificationRequest,
  type ParseResult,
  type Recipient,
  SCHEMA_VERSION,
} from "./notifications/schema";
export type {
  NotificationStatus,
  RecipientState,
  RecipientStatus,
  RequestStatusState,
} from "./notifications/status";
export type { OutgoingMessage, QueuePort } from "./queue/queue-port";
