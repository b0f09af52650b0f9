import { randomUUID } from "node:crypto";

import type { TokenCredential } from "@azure/identity";

import { HeraldError, toError } from "../errors";
import type { EventPage } from "../events/event-log";
import type { CloudEvent } from "../model/cloud-event";
import type { NotificationRequest } from "../notifications/schema";
import type { NotificationStatus } from "../notifications/status";
import { type ChangeAnswer, type RecallInput, type UpdateInput, validateChange } from "./changes";
import {
  NotificationSendError,
  RequestConflictError,
  type RequestIssue,
  RequestValidationError,
} from "./client-errors";
import { checkTarget, type NotificationClientTarget } from "./client-target";
import { type FetchLike, HttpTransport, type StatusOptions } from "./http-transport";
import { type NotificationRequestInput, prepareRequest } from "./prepare-request";
import {
  type RecipientChangeAnswer,
  type RecipientUpdateInput,
  validateRecipientChange,
} from "./recipient-changes";
import { type NotificationTransport, QueueTransport } from "./transport";

export type { NotificationClientTarget } from "./client-target";

export interface NotificationClientOptions {
  /** The queue's name (default `notifications`). */
  readonly queueName?: string;
  /**
   * Herald's function app for `status()` when sending through a queue (with an `endpoint`
   * target the same endpoint serves both).
   */
  readonly statusEndpoint?: string;
  /** `x-functions-key` for the HTTP calls (send with an endpoint target, and status). */
  readonly functionKey?: string;
  /** Extra headers on HTTP calls. */
  readonly headers?: Readonly<Record<string, string>>;
  /** HTTP requests in flight at once for `sendMany` over HTTP (default 8). */
  readonly httpConcurrency?: number;
  /** Tries per HTTP call for 429/5xx/network errors (default 4). */
  readonly httpMaxTries?: number;
  /** Makes ids for requests that have none (default `randomUUID`). */
  readonly generateId?: () => string;
  readonly fetch?: FetchLike;
}

export interface SendManyOptions {
  /** Called as requests are accepted (or refused as conflicts): how many so far, of how many. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface WaitOptions {
  /** The request's tenant (needed when several tenants use the id). */
  readonly tenantId?: string;
  /** Give up after this long (default 60 s). */
  readonly timeoutMs?: number;
  /** Time between looks (default 1 s). */
  readonly pollMs?: number;
  /** Each status read while waiting (undefined: Herald has no such request yet). */
  readonly onProgress?: (status: NotificationStatus | undefined) => void;
  /** For tests: how to wait between looks, and what time it is. */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

export interface FollowOptions {
  /** Start after this cursor (a page's `next`); default: the request's first event. */
  readonly after?: string;
  /** Time between looks when nothing new came (default 1 s). */
  readonly pollMs?: number;
  /** Stop following after this long, final or not (default: until final). */
  readonly timeoutMs?: number;
  /** Stop following when this signal aborts. */
  readonly signal?: AbortSignal;
  /** For tests: how to wait between looks, and what time it is. */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

export type WaitResult =
  | { readonly kind: "final"; readonly status: NotificationStatus }
  /** Not final in time: the last status seen (undefined: Herald never had the request). */
  | { readonly kind: "timeout"; readonly status: NotificationStatus | undefined };

function defaultSleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

const CONNECTION_STRING = /(^|;)\s*Endpoint\s*=\s*sb:\/\//i;

/** `sb://ns.servicebus.windows.net/` and `ns.servicebus.windows.net` are the same namespace. */
function namespaceHost(value: string): string {
  return value
    .trim()
    .replace(/^sb:\/\//i, "")
    .replace(/\/+$/, "");
}

function isCredential(value: unknown): value is TokenCredential {
  return typeof (value as TokenCredential | undefined)?.getToken === "function";
}

/**
 * Sends notification requests to Herald from a line-of-business app.
 *
 * ```ts
 * const client = new NotificationClient("contoso-herald.servicebus.windows.net"); // DefaultAzureCredential
 * const id = await client.send({ tenantId, recipients: [{ userPrincipalName: "alice@contoso.com" }],
 *                                message: { text: "Your expense report was approved" } });
 * ```
 *
 * Every request is validated with the processor's own schema before anything is sent; a bad
 * one throws `RequestValidationError` naming each field (and, for `sendMany`, its index), and
 * nothing of that call is sent. The message id is `requestMessageId` (tenant, id and content),
 * so sending the same request twice is harmless (Service Bus duplicate detection, and the
 * processor's replay), while a conflicting one reaches Herald to be recorded.
 */
export class NotificationClient {
  private readonly target: NotificationClientTarget;
  private readonly options: NotificationClientOptions;
  private transportValue: NotificationTransport | undefined;
  private statusTransport: HttpTransport | undefined;

  /** A namespace (`…servicebus.windows.net`) with a credential, a connection string, or a URL. */
  constructor(
    namespaceConnectionStringOrEndpoint: string,
    credential?: TokenCredential,
    options?: NotificationClientOptions,
  );
  constructor(target: NotificationClientTarget, options?: NotificationClientOptions);
  constructor(
    target: string | NotificationClientTarget,
    credentialOrOptions?: TokenCredential | NotificationClientOptions,
    options?: NotificationClientOptions,
  ) {
    if (typeof target === "string") {
      const credential = isCredential(credentialOrOptions) ? credentialOrOptions : undefined;
      this.options =
        (credentialOrOptions === undefined || credential !== undefined
          ? options
          : (credentialOrOptions as NotificationClientOptions)) ?? {};
      if (CONNECTION_STRING.test(target)) this.target = { connectionString: target };
      else if (/^https?:\/\//i.test(target)) this.target = { endpoint: target };
      else {
        this.target = {
          fullyQualifiedNamespace: namespaceHost(target),
          ...(credential !== undefined ? { credential } : {}),
        };
      }
    } else {
      this.target = target;
      this.options = (isCredential(credentialOrOptions) ? options : credentialOrOptions) ?? {};
    }
    checkTarget(this.target);
  }

  /** Where requests go, for messages to people (never a secret). */
  get description(): string {
    return this.transport().description;
  }

  /**
   * True when Herald answers each send (the HTTP endpoint): a returned id is accepted. False for
   * a queue: a returned id is on the queue, and Herald accepts or refuses it when it takes it
   * (see `status` or `waitForFinal`).
   */
  get confirmsAcceptance(): boolean {
    return this.transport().confirmsAcceptance;
  }

  /**
   * Validates and sends one request; returns its id (the one given, or a new UUID).
   * @throws RequestValidationError naming every bad field; nothing is sent.
   * @throws RequestConflictError (HTTP) when the id is taken in the tenant by different content.
   */
  async send(request: NotificationRequestInput): Promise<string> {
    const [id] = await this.sendMany([request]);
    return id!;
  }

  /**
   * Validates every request, then sends them all (in broker batches on Service Bus); returns
   * their ids in order.
   * @throws RequestValidationError listing every bad field with its index; nothing is sent.
   * @throws RequestConflictError (HTTP) when some ids are taken in their tenant by different
   *   content; every other request was still sent (`sentIds`).
   * @throws NotificationSendError when sending failed part-way (it lists what was sent, and
   *   which ids were refused as conflicts before the failure).
   */
  async sendMany(
    requests: readonly NotificationRequestInput[],
    options: SendManyOptions = {},
  ): Promise<string[]> {
    const valid = this.validateMany(requests);
    await this.sendValidated(valid, options);
    return valid.map((r) => r.id);
  }

  private async sendValidated(
    requests: readonly NotificationRequest[],
    options: SendManyOptions = {},
  ): Promise<void> {
    if (requests.length === 0) return;
    const transport = this.transport();
    const sent: string[] = [];
    const sentSet = new Set<string>();
    const conflicts: string[] = [];
    const progress = () => options.onProgress?.(sent.length + conflicts.length, requests.length);
    options.onProgress?.(0, requests.length);
    try {
      await transport.send(requests, {
        onSent: (ids) => {
          for (const id of ids) {
            sent.push(id);
            sentSet.add(id);
          }
          progress();
        },
        onConflict: (id) => {
          conflicts.push(id);
          progress();
        },
      });
    } catch (error) {
      if (error instanceof RequestValidationError && sent.length === 0 && conflicts.length === 0)
        throw error;
      const cause = toError(error);
      const refused = new Set(conflicts);
      const unsent = requests.map((r) => r.id).filter((id) => !sentSet.has(id) && !refused.has(id));
      const conflictNote =
        conflicts.length > 0
          ? ` (${conflicts.length} refused as conflicts: id taken with different content)`
          : "";
      throw new NotificationSendError(
        requests.length === 1
          ? `Sending to ${transport.description} failed: ${cause.message}`
          : `Sending to ${transport.description} failed after ${sent.length} of ${requests.length} requests${conflictNote}: ${cause.message}`,
        sent,
        unsent,
        { cause, conflictIds: conflicts },
      );
    }
    if (conflicts.length > 0)
      throw new RequestConflictError({ conflictIds: conflicts, sentIds: sent });
  }

  /**
   * A new revision of an accepted request's message or summary, or (while it is scheduled) a new
   * `notBefore`. Sent copies are replaced in place; recipients not sent yet get the latest.
   * @throws RequestValidationError naming every bad field; nothing is sent.
   * @throws NotificationNotFoundError (HTTP) when the tenant has no request with that id.
   * @throws ChangeRefusedError (HTTP) when the request was recalled or rejected, or a new
   *   `notBefore` came after it was sent.
   */
  async update(change: UpdateInput): Promise<ChangeAnswer> {
    return this.transport().change(validateChange("update", change));
  }

  /**
   * Replaces one person's copy of a sent request with content of its own (the request-wide
   * update's `message` and/or `summary`), e.g. "Approved, order 4711 created" to the person who
   * clicked; over Herald's HTTP endpoint (the target's, or `statusEndpoint`). `recipient` is
   * their AAD object id, UPN or Teams user id. A later `update` of the request supersedes it.
   * @throws RequestValidationError naming every bad field; nothing is sent.
   * @throws NotificationNotFoundError, or RecipientNotFoundError when the request does not
   *   reach that person.
   * @throws ChangeRefusedError when the request was recalled or rejected, or the copy is not
   *   sent (yet).
   */
  async updateRecipient(
    id: string,
    tenantId: string,
    recipient: string,
    content: RecipientUpdateInput,
  ): Promise<RecipientChangeAnswer> {
    const change = validateRecipientChange({ id, tenantId, recipient, content });
    return this.statusClient("updateRecipient()").changeRecipient(change);
  }

  /**
   * Recalls an accepted request: sent copies are deleted, recipients not sent yet are never
   * sent. Idempotent.
   * @throws NotificationNotFoundError (HTTP) when the tenant has no request with that id.
   */
  async recall(change: RecallInput): Promise<ChangeAnswer> {
    return this.transport().change(validateChange("recall", change));
  }

  /** Validates without sending (ids filled in as `send` would); throws like `sendMany`. */
  validateMany(requests: readonly NotificationRequestInput[]): NotificationRequest[] {
    const issues: RequestIssue[] = [];
    const valid: NotificationRequest[] = [];
    const seen = new Map<string, number>();
    const newId = this.options.generateId ?? randomUUID;
    requests.forEach((input, index) => {
      const where = requests.length > 1 ? { index } : {};
      const prepared = prepareRequest(input, newId, where);
      if (!prepared.ok) {
        issues.push(...prepared.issues);
        return;
      }
      const first = seen.get(prepared.request.id);
      if (first !== undefined) {
        // The broker would silently drop the second as a duplicate: say so now instead.
        issues.push({ ...where, path: "id", message: `duplicates requests[${first}].id` });
        return;
      }
      seen.set(prepared.request.id, index);
      valid.push(prepared.request);
    });
    if (issues.length > 0) throw new RequestValidationError(issues);
    return valid;
  }

  /**
   * The request's per-recipient states with counts (`GET /api/notifications/{id}`), or
   * undefined when Herald has no request with that id (yet: the processor records it when it
   * takes it from the queue).
   */
  async status(id: string, query: StatusOptions = {}): Promise<NotificationStatus | undefined> {
    return this.statusClient().status(id, query);
  }

  /**
   * Reads the status until the request is final (`completed`, `rejected` or `failed`) or the
   * time is up. This wait is the caller's own (a script blocking on the outcome); it never runs
   * inside Herald.
   */
  async waitForFinal(
    id: string,
    options: WaitOptions & Pick<StatusOptions, "state" | "limit"> = {},
  ): Promise<WaitResult> {
    const sleep = options.sleep ?? defaultSleep;
    const now = options.now ?? Date.now;
    const pollMs = Math.max(1, options.pollMs ?? 1_000);
    const deadline = now() + Math.max(0, options.timeoutMs ?? 60_000);
    const query: StatusOptions = {
      ...(options.tenantId !== undefined ? { tenantId: options.tenantId } : {}),
      ...(options.state !== undefined ? { state: options.state } : {}),
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
    };
    for (;;) {
      const status = await this.status(id, query);
      options.onProgress?.(status);
      if (status?.final === true) return { kind: "final", status };
      const left = deadline - now();
      if (left <= 0) return { kind: "timeout", status };
      await sleep(Math.min(pollMs, left));
    }
  }

  /**
   * One page of the request's events (CloudEvents, in order) after `after`, with the cursor of
   * the next page and whether the request is final; undefined when Herald has no such request
   * (yet). A page may repeat an event seen before (one recorded late restarts the page from the
   * top): de-duplicate by `id`, as `followEvents` does.
   */
  async events(
    id: string,
    tenantId: string,
    options: { readonly after?: string; readonly limit?: number } = {},
  ): Promise<EventPage | undefined> {
    return this.statusClient().events(id, tenantId, options);
  }

  /**
   * The request's events as they happen, each once, until the request is final (the endpoint
   * says so once its `herald.notification.completed` or `.rejected` was yielded), the time is up
   * or `signal` aborts. Read receipts that come after the final event need another call.
   */
  async *followEvents(
    id: string,
    tenantId: string,
    options: FollowOptions = {},
  ): AsyncGenerator<CloudEvent, void, undefined> {
    const sleep = options.sleep ?? defaultSleep;
    const now = options.now ?? Date.now;
    const pollMs = Math.max(1, options.pollMs ?? 1_000);
    const deadline = options.timeoutMs === undefined ? Infinity : now() + options.timeoutMs;
    const seen = new Set<string>();
    let after = options.after;
    let final = false;
    while (options.signal?.aborted !== true) {
      const page = await this.events(id, tenantId, after !== undefined ? { after } : {});
      for (const event of page?.events ?? []) {
        if (seen.has(event.id)) continue;
        seen.add(event.id);
        yield event;
      }
      if (page !== undefined) {
        after = page.next;
        final = page.final;
      }
      const more = page !== undefined && page.events.length > 0;
      if (final && !more) return;
      const left = deadline - now();
      if (left <= 0) return;
      if (!more) await sleep(Math.min(pollMs, left));
    }
  }

  /** Closes the Service Bus connection, if one was opened. */
  async close(): Promise<void> {
    const transport = this.transportValue;
    this.transportValue = undefined;
    await transport?.close();
  }

  private transport(): NotificationTransport {
    this.transportValue ??= this.createTransport();
    return this.transportValue;
  }

  private createTransport(): NotificationTransport {
    const target = this.target;
    const queueName = this.options.queueName ?? "notifications";
    if ("queue" in target) {
      return new QueueTransport(target.queue, target.description ?? "the given queue");
    }
    if ("endpoint" in target) return this.http(target.endpoint, target.functionKey);
    if ("localQueueDirectory" in target) {
      /* eslint-disable @typescript-eslint/no-require-imports -- lazy: the local broker (and node:sqlite) only when asked for */
      const { LocalQueue } =
        require("../queue/local-queue") as typeof import("../queue/local-queue");
      /* eslint-enable @typescript-eslint/no-require-imports */
      const queue = new LocalQueue({ directory: target.localQueueDirectory, queueName });
      return new QueueTransport(queue, queue.description, () => {
        queue.close();
        return Promise.resolve();
      });
    }
    /* eslint-disable @typescript-eslint/no-require-imports -- lazy: the Service Bus SDK and identity cost load time that the HTTP and local paths never need */
    const { ServiceBusClient } =
      require("@azure/service-bus") as typeof import("@azure/service-bus");
    const { ServiceBusQueue } =
      require("../queue/service-bus-queue") as typeof import("../queue/service-bus-queue");
    /* eslint-enable @typescript-eslint/no-require-imports */
    let client: InstanceType<typeof ServiceBusClient>;
    let description: string;
    if ("connectionString" in target) {
      client = new ServiceBusClient(target.connectionString);
      const host = /Endpoint\s*=\s*sb:\/\/([^/;]+)/i.exec(target.connectionString)?.[1];
      description = `Service Bus ${host ?? "(connection string)"}/${queueName}`;
    } else {
      /* eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy, as above */
      const identity = require("@azure/identity") as typeof import("@azure/identity");
      client = new ServiceBusClient(
        target.fullyQualifiedNamespace,
        target.credential ?? new identity.DefaultAzureCredential(),
      );
      description = `Service Bus ${target.fullyQualifiedNamespace}/${queueName}`;
    }
    const queue = new ServiceBusQueue(client.createSender(queueName), () => client.close());
    return new QueueTransport(queue, description, () => queue.close());
  }

  private statusClient(what = "status()"): HttpTransport {
    if (this.statusTransport !== undefined) return this.statusTransport;
    const endpoint = "endpoint" in this.target ? this.target.endpoint : this.options.statusEndpoint;
    if (endpoint === undefined) {
      throw new HeraldError(
        `${what} needs Herald's HTTP endpoint: pass options.statusEndpoint (the function app URL)`,
      );
    }
    const key = "endpoint" in this.target ? this.target.functionKey : undefined;
    this.statusTransport = this.http(endpoint, key);
    return this.statusTransport;
  }

  private http(endpoint: string, functionKey: string | undefined): HttpTransport {
    return new HttpTransport({
      endpoint,
      functionKey: functionKey ?? this.options.functionKey,
      headers: this.options.headers,
      concurrency: this.options.httpConcurrency,
      maxTries: this.options.httpMaxTries,
      fetch: this.options.fetch,
    });
  }
}
