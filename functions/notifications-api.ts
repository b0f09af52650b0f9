import type { HttpHandler, HttpMethod } from "@azure/functions";

import { notificationsApi as api } from "../shared/process-services";
import { registerHttp } from "../shared/registry";

/** `POST /api/notifications`: validate and enqueue a notification request. */
export const enqueueNotification: HttpHandler = (r, c) => api().enqueue(r, c);
/** `GET /api/notifications/{id}`: per-recipient states with counts. */
export const notificationStatus: HttpHandler = (r, c) => api().status(r, c);
/** `PATCH /api/notifications/{id}?tenantId=`: a new revision (or time) of a request. */
export const updateNotification: HttpHandler = (r, c) => api().update(r, c);
/** `DELETE /api/notifications/{id}?tenantId=`: recall a request. */
export const recallNotification: HttpHandler = (r, c) => api().recall(r, c);
/** `PATCH /api/notifications/{id}/recipients/{recipient}?tenantId=`: one person's copy. */
export const updateNotificationRecipient: HttpHandler = (r, c) => api().updateRecipient(r, c);
/** `GET /api/notifications/{id}/events`: the request's events, in order, with a cursor. */
export const notificationEvents: HttpHandler = (r, c) => api().events(r, c);

const routes: [string, HttpMethod, string, HttpHandler][] = [
  ["notifications-enqueue", "POST", "notifications", enqueueNotification],
  ["notifications-status", "GET", "notifications/{id}", notificationStatus],
  ["notifications-update", "PATCH", "notifications/{id}", updateNotification],
  ["notifications-recall", "DELETE", "notifications/{id}", recallNotification],
  [
    "notifications-update-recipient",
    "PATCH",
    "notifications/{id}/recipients/{recipient}",
    updateNotificationRecipient,
  ],
  ["notifications-events", "GET", "notifications/{id}/events", notificationEvents],
];
for (const [name, method, route, handler] of routes)
  registerHttp(name, { methods: [method], authLevel: "function", route, handler });
