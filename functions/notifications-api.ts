import type { HttpHandler } from "@azure/functions";

import { processServices } from "../shared/composition";
import { createNotificationsApi } from "../shared/notifications/http-api";
import { registerHttp } from "../shared/registry";

/** Kept for callers of this module's old export; the API lives in shared/notifications. */
export { createNotificationsApi } from "../shared/notifications/http-api";

const api = createNotificationsApi(() => processServices().notifications);

/** `POST /api/notifications`: validate and enqueue a notification request. */
export const enqueueNotification: HttpHandler = api.enqueue;
/** `GET /api/notifications/{id}`: per-recipient states with counts. */
export const notificationStatus: HttpHandler = api.status;
/** `GET /api/notifications/{id}/events`: the request's events, in order, with a cursor. */
export const notificationEvents: HttpHandler = api.events;

registerHttp("notifications-enqueue", {
  methods: ["POST"],
  authLevel: "function",
  route: "notifications",
  handler: enqueueNotification,
});

registerHttp("notifications-status", {
  methods: ["GET"],
  authLevel: "function",
  route: "notifications/{id}",
  handler: notificationStatus,
});

registerHttp("notifications-events", {
  methods: ["GET"],
  authLevel: "function",
  route: "notifications/{id}/events",
  handler: notificationEvents,
});
