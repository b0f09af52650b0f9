import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { CloudAdapter, TurnContext } from "botbuilder";

import { toError } from "../errors";
import { contextLogger, type Logger } from "../logging";
import { type BoundaryIssue, parseActivity, parseEnvelope } from "./activity-schema";
import { type HeraldBot, TURN_DATA, type TurnData } from "./herald-bot";
import { type BotRequest, BotResponse } from "./http-shim";

export interface MessagesEndpointDeps {
  adapter: CloudAdapter;
  bot: HeraldBot;
  requiresAuthentication: boolean;
  /** Lower-cased tenant ids; undefined = every tenant. */
  allowedTenantIds: ReadonlySet<string> | undefined;
}

/** A decision taken inside the turn that overrides the adapter's 200. */
interface TurnOutcome {
  ran: boolean;
  response?: HttpResponseInit;
}

function refusal(
  status: number,
  code: string,
  message: string,
  issues?: BoundaryIssue[],
): HttpResponseInit {
  return { status, jsonBody: { error: { code, message, ...(issues ? { issues } : {}) } } };
}

function describeIssues(issues: readonly BoundaryIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join("; ");
}

/**
 * `POST /api/messages` (and `HEAD`, which the Agents Playground sends as a probe).
 *
 * Order matters: nothing about the activity is trusted or recorded before Bot Framework
 * authentication passed (botbuilder does it inside `process`), so validation and the tenant
 * allow-list run in the turn. The few envelope fields botbuilder itself needs are checked
 * before, because botbuilder answers 500 when they are missing. Bad input is a logged 400/403
 * naming the field; a no-op (another channel, an activity Herald ignores) is a logged 200.
 */
export async function handleMessages(
  deps: MessagesEndpointDeps,
  request: HttpRequest,
  invocation: InvocationContext,
): Promise<HttpResponseInit> {
  const log = contextLogger(invocation, { invocationId: invocation.invocationId });
  if (request.method === "HEAD") return { status: 200 };
  if (request.method !== "POST") {
    return { status: 405, headers: { Allow: "POST, HEAD" } };
  }

  const authorization = request.headers.get("authorization") ?? "";
  if (deps.requiresAuthentication && authorization.trim() === "") {
    log.warn("Refused an activity without a Bot Framework token (401)");
    return refusal(401, "Unauthorized", "A Bot Framework bearer token is required");
  }

  let body: unknown;
  try {
    body = JSON.parse(await request.text()) as unknown;
  } catch {
    log.warn("Refused a request whose body is not JSON (400)");
    return refusal(400, "InvalidJson", "The request body must be a JSON activity");
  }
  const envelope = parseEnvelope(body);
  if (!envelope.ok) {
    log.warn("Refused a malformed activity (400)", { issues: describeIssues(envelope.issues) });
    return refusal(400, "BadActivity", "The activity is malformed", envelope.issues);
  }

  const outcome: TurnOutcome = { ran: false };
  const botRequest: BotRequest = {
    method: "POST",
    headers: authorization === "" ? {} : { authorization },
    body: body as Record<string, unknown>,
  };
  const response = new BotResponse();
  await deps.adapter.process(botRequest, response, (context) =>
    runTurn(deps, context, log, outcome),
  );

  if (!outcome.ran) {
    if (response.statusCode === 401) {
      log.warn("Refused an activity: Bot Framework authentication failed (401)");
    } else if (response.statusCode >= 500) {
      log.error("botbuilder failed before Herald's turn ran", { status: response.statusCode });
    }
    return response.toHttpResponse();
  }
  return outcome.response ?? response.toHttpResponse();
}

async function runTurn(
  deps: MessagesEndpointDeps,
  context: TurnContext,
  log: Logger,
  outcome: TurnOutcome,
): Promise<void> {
  outcome.ran = true;
  const parsed = parseActivity(context.activity);
  if (!parsed.ok) {
    log.warn("Refused a malformed activity (400)", {
      activityType: context.activity.type,
      issues: describeIssues(parsed.issues),
    });
    outcome.response = refusal(400, "BadActivity", "The activity is malformed", parsed.issues);
    return;
  }
  const activity = parsed.value;
  const logger = log.with({
    tenantId: activity.tenantId,
    activityType: activity.type,
    activityId: activity.id ?? undefined,
    scope: activity.scope,
  });
  if (deps.allowedTenantIds !== undefined && !deps.allowedTenantIds.has(activity.tenantId)) {
    logger.warn("Refused an activity from a tenant not in AllowedTenantIds (403)");
    outcome.response = refusal(403, "TenantNotAllowed", "This tenant is not allowed to use Herald");
    return;
  }
  if (activity.channelId !== "msteams") {
    logger.info("Ignored an activity from a channel other than Microsoft Teams", {
      channelId: activity.channelId,
    });
    return;
  }

  const data: TurnData = { activity, logger };
  context.turnState.set(TURN_DATA, data);
  try {
    await deps.bot.run(context);
  } catch (error) {
    // Input was valid, so this is ours or a dependency's (storage down): 500 lets Teams retry.
    logger.error("Handling the activity failed", { error: toError(error).message.slice(0, 300) });
    outcome.response = refusal(500, "InternalError", "Herald could not handle the activity");
  }
}
