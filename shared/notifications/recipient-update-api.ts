import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";

import { contextLogger } from "../logging";
import { recipientNamed } from "../model/recipient";
import { json, namedRequest, statusUrl, updateBody } from "./http-parts";
import type { RecipientChangeResult, RecipientUpdates } from "./recipient-updates";

/**
 * `PATCH /api/notifications/{id}/recipients/{recipient}?tenantId=`: one person's copy of a sent
 * request replaced with content of its own. `{recipient}` is their AAD object id, UPN or Teams
 * user id; the body is the request-wide update's (`message` and/or `summary`, the same schema
 * and limits), without `notBefore`. Answers as the request-wide `PATCH`: 202 with the override's
 * sequence, 400 for a bad body, 404 for an unknown request or recipient, 409 for a recalled or
 * rejected request or a copy that is not sent.
 */
export function recipientUpdateHandler(
  updates: () => Pick<RecipientUpdates, "update">,
): (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit> {
  return async (request, context) => {
    const target = namedRequest(request);
    if (!target.ok) return target.response;
    const recipient = recipientNamed(request.params.recipient ?? "");
    if (recipient === undefined)
      return json(400, {
        error: "invalid recipient",
        errors: [
          {
            path: "recipient",
            message: "must be an AAD object id (GUID), a UPN or a Teams user id (29:…)",
          },
        ],
      });
    const parsed = await updateBody(request, target.value);
    if (!parsed.ok) return parsed.response;
    const { message, summary, notBefore, correlationId } = parsed.value;
    if (notBefore !== undefined || (message === undefined && summary === undefined))
      return json(400, {
        error: "invalid request",
        errors: [
          {
            path: notBefore !== undefined ? "notBefore" : "(body)",
            message:
              notBefore !== undefined
                ? "applies to the whole request only (PATCH /api/notifications/{id})"
                : "must change at least one of message, summary",
          },
        ],
      });
    const log = contextLogger(context).with({ requestId: target.value.id, correlationId });
    const result = await updates().update(
      target.value,
      recipient,
      {
        ...(message !== undefined ? { message } : {}),
        ...(summary !== undefined ? { summary } : {}),
        correlationId,
      },
      log,
    );
    return answer(request, result);
  };
}

function answer(request: HttpRequest, result: RecipientChangeResult): HttpResponseInit {
  switch (result.kind) {
    case "accepted": {
      const url = statusUrl(request, result.id, result.tenantId);
      return json(
        202,
        {
          id: result.id,
          recipient: result.recipient,
          revision: result.revision,
          override: result.override,
          statusUrl: url,
        },
        { location: url },
      );
    }
    case "not-found":
      return json(404, {
        error: result.what === "request" ? "not found" : "recipient not found",
        id: result.id,
      });
    case "invalid":
      return json(400, { error: "invalid request", errors: result.errors });
    case "refused":
      return json(409, { error: "conflict", message: result.message, id: result.id });
  }
}
