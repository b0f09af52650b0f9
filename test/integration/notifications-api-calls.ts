import { HttpRequest, type HttpResponseInit, InvocationContext } from "@azure/functions";

import { createNotificationsApi } from "../../shared/notifications/http-api";
import type { NotificationServices } from "../../shared/notifications/services";

export const API_BASE = "https://herald.example/api/notifications";

const quiet = () => new InvocationContext({ logHandler: () => {} });

/**
 * The HTTP API's real handlers over given services, called as the Functions host calls them:
 * `post` a body (a string is sent as is), `get` a request's status (with an optional query).
 */
export function notificationsApiCalls(services: () => NotificationServices): {
  post(body: unknown): Promise<HttpResponseInit>;
  get(id: string, query?: string): Promise<HttpResponseInit>;
} {
  const api = createNotificationsApi(services);
  return {
    async post(body) {
      const request = new HttpRequest({
        method: "POST",
        url: API_BASE,
        headers: { "content-type": "application/json" },
        body: { string: typeof body === "string" ? body : JSON.stringify(body) },
      });
      return api.enqueue(request, quiet());
    },
    async get(id, query = "") {
      const request = new HttpRequest({
        method: "GET",
        url: `${API_BASE}/${id}${query}`,
        params: { id },
      });
      return api.status(request, quiet());
    },
  };
}
