import { subscribe } from "node:diagnostics_channel";
import type { ClientRequest } from "node:http";

// Type only: botbuilder builds these clients but does not re-export their type.
import type { ConnectorClient } from "botframework-connector";

import { pipelineOf } from "./single-attempt";

/**
 * When a Teams call really left: its HTTP request handed to the operating system (the request's
 * `finish`), not when Herald started it. The two differ by the connection: a call that needs a new
 * socket waits for the TCP (in Azure, also the TLS) handshake, 40-70 ms on a busy process, while
 * one on a kept-alive socket leaves at once. Teams counts calls as they arrive, so a pacer that
 * counts starts sees a window of 48 where Teams sees 51-53: the first calls of a burst, slowed by
 * their handshakes, arrive together with later ones that were not (bench: four tenants on one
 * instance). Told the real times, the pacer counts what Teams counts.
 *
 * How: the connector registers the call's abort signal (one per call, and @azure/core-client
 * hands it to the pipeline request unchanged); `wireTimePolicy`, last in the client's pipeline,
 * maps the request's `x-ms-client-request-id` (set by the pipeline's request id policy) to the
 * call's listener; Node's `http.client.request.start` diagnostics channel gives the
 * `ClientRequest` with that header, whose `finish` then calls the listener when the request went
 * over a new connection. A channel that does not fire leaves the start counted where it was.
 */
type OnWire = () => void;

/** The pipeline policy shape of @azure/core-rest-pipeline, as far as this policy uses it. */
interface PipelineRequestLike {
  readonly requestId: string;
  readonly abortSignal?: AbortSignal | undefined;
  readonly headers: { get(name: string): string | undefined };
}
interface WirePolicy {
  readonly name: string;
  sendRequest<R>(
    request: PipelineRequestLike,
    next: (r: PipelineRequestLike) => Promise<R>,
  ): Promise<R>;
}

const REQUEST_ID_HEADER = "x-ms-client-request-id";

const byCall = new WeakMap<AbortSignal, OnWire>();
/** Requests in flight whose call has a listener, by request id: a few per tenant at a time. */
const inFlight = new Map<string, OnWire>();
let subscribed = false;

function subscribeOnce(): void {
  if (subscribed) return;
  subscribed = true;
  subscribe("http.client.request.start", (message) => {
    const request = (message as { request?: ClientRequest }).request;
    const id = request?.getHeader(REQUEST_ID_HEADER);
    const onWire = typeof id === "string" ? inFlight.get(id) : undefined;
    if (request === undefined || onWire === undefined) return;
    // On a kept-alive socket the request is written as it starts: nothing to move. Only a new
    // connection makes it leave later, and only then is the `finish` time told (a `finish` seen
    // late because the event loop was busy would otherwise count every call late, and the gate
    // would hold back calls for pauses of its own process: 41/s of 48 at 8 instances on 2 cores).
    request.once("finish", () => {
      if (!request.reusedSocket) onWire();
    });
  });
}

/** Calls `onWire` once the request of the call made with `signal` left over a new connection. */
export function watchWire(signal: AbortSignal, onWire: OnWire): void {
  subscribeOnce();
  byCall.set(signal, onWire);
}

const wireTimePolicy: WirePolicy = {
  name: "heraldWireTime",
  async sendRequest(request, next) {
    const onWire = request.abortSignal === undefined ? undefined : byCall.get(request.abortSignal);
    if (onWire === undefined) return next(request);
    const id = request.headers.get(REQUEST_ID_HEADER) ?? request.requestId;
    inFlight.set(id, onWire);
    try {
      return await next(request);
    } finally {
      inFlight.delete(id);
    }
  },
};

/** Adds `wireTimePolicy` last in the client's pipeline (after signing: nothing runs after it). */
export function withWireTimes(client: ConnectorClient): ConnectorClient {
  pipelineOf(client)?.addPolicy(wireTimePolicy, { afterPhase: "Sign" });
  return client;
}
