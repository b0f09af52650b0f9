import type { HttpHandler, HttpMethod } from "@azure/functions";

import { processServices } from "../shared/composition";
import { createNotificationsApi } from "../shared/notifications/http-api";
import { registerHttp } from "../shared/registry";

const api = createNotificationsApi(() => processServices().notifications);

/** `POST /api/notifications`: validate and enqueue a notification request. */
export const enqueueNotification: HttpHandler = api.enqueue;
/** `GET /api/notifications/{id}`: per-recipient states with counts. */
export const notificationStatus: HttpHandler = api.status;
/** `PATCH /api/notifications/{id}?tenantId=`: a new revision (or time) of a request. */
export const updateNotification: HttpHandler = api.update;
/** `DELETE /api/notifications/{id}?tenantId=`: recall a request. */
export const recallNotification: HttpHandler = api.recall;
/** `GET /api/notifications/{id}/events`: the request's events, in order, with a cursor. */
export const notificationEvents: HttpHandler = api.events;

const routes: [string, HttpMethod, string, HttpHandler][] = [
  ["notifications-enqueue", "POST", "notifications", enqueueNotification],
  ["notifications-status", "GET", "notifications/{id}", notificationStatus],
  ["notifications-update", "PATCH", "notifications/{id}", updateNotification],
  ["notifications-recall", "DELETE", "notifications/{id}", recallNotification],
  ["notifications-events", "GET", "notifications/{id}/events", notificationEvents],
];
for (const [name, method, route, handler] of routes)
  registerHttp(name, { methods: [method], authLevel: "function", route, handler });
