// Type only: botbuilder builds these clients but does not re-export their type.
import type { ConnectorClient } from "botframework-connector";

import type { Logger } from "../logging";

/** The name @azure/core-rest-pipeline gives the retry policy every Bot Connector client has. */
const DEFAULT_RETRY_POLICY = "defaultRetryPolicy";

/**
 * Makes a Bot Connector client single-attempt, in place, and returns it.
 *
 * The client botbuilder builds (`ConnectorFactory.create`, which CloudAdapter uses for every
 * turn) runs @azure/core-rest-pipeline's default retry policy: it retries 429 and 503 honouring
 * Retry-After (with no cap) and other 5xx and network errors with exponential back-off, up to
 * 3 times, sleeping inside the call. Herald retries elsewhere (the processor re-schedules the
 * message; a failed welcome is retried by its `welcome-check` work item), so in-call retries
 * would only multiply calls to Teams and hold the caller (for the bot: Teams' HTTP request,
 * which Teams abandons and redelivers after 15 s). Removing the policy makes every Teams answer
 * reach the caller after exactly one call.
 */
export function withoutRetries(client: ConnectorClient, logger?: Logger): ConnectorClient {
  const pipeline = pipelineOf(client);
  if (pipeline === undefined) {
    logger?.warn("Bot Connector client has no pipeline to adjust: its built-in retries stay on");
    return client;
  }
  pipeline.removePolicy({ name: DEFAULT_RETRY_POLICY });
  return client;
}

/** The parts of @azure/core-rest-pipeline's documented `Pipeline` Herald adjusts. */
export interface ClientPipeline {
  removePolicy(options: { name: string }): unknown[];
  addPolicy(policy: unknown, options?: { afterPhase?: "Serialize" | "Retry" | "Sign" }): void;
}

/** A Bot Connector client's request pipeline, when it has one. */
export function pipelineOf(client: ConnectorClient): ClientPipeline | undefined {
  // `client` (the @azure/core-client ServiceClient) is private in botbuilder's typings; its
  // pipeline is the documented @azure/core-rest-pipeline Pipeline.
  return (client as unknown as { client?: { pipeline?: ClientPipeline } }).client?.pipeline;
}
