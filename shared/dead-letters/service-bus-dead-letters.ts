import { randomUUID } from "node:crypto";

import type {
  ServiceBusMessage,
  ServiceBusReceivedMessage,
  ServiceBusReceiver,
  ServiceBusSender,
} from "@azure/service-bus";

import {
  type DeadLetter,
  type DeadLetterSelection,
  type DeadLetterStore,
  isSelected,
  type ReplayOptions,
} from "./dead-letter-store";

/** The part of the SDK's receiver on `<queue>/$deadletterqueue` this adapter uses: the seam tests fake. */
export type DeadLetterReceiver = Pick<
  ServiceBusReceiver,
  "peekMessages" | "receiveMessages" | "completeMessage" | "abandonMessage" | "close"
>;

/** The part of the SDK's sender to the queue itself (replays go back there). */
export type ReplaySender = Pick<ServiceBusSender, "sendMessages" | "close">;

// eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy SDK load, typed
const serviceBusSdk = () => require("@azure/service-bus") as typeof import("@azure/service-bus");
// eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy SDK load, typed
const identitySdk = () => require("@azure/identity") as typeof import("@azure/identity");

const PAGE = 50;
/** Properties the broker adds when it dead-letters a message: not part of the replayed copy. */
const BROKER_PROPERTIES = new Set(["DeadLetterReason", "DeadLetterErrorDescription"]);
const RECEIVE_WAIT_MS = 5_000;

function toDeadLetter(message: ServiceBusReceivedMessage): DeadLetter {
  const properties: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(message.applicationProperties ?? {})) {
    if (BROKER_PROPERTIES.has(key)) continue;
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
      properties[key] = value;
  }
  return {
    id: String(message.sequenceNumber),
    messageId: String(message.messageId ?? ""),
    correlationId: message.correlationId === undefined ? undefined : String(message.correlationId),
    sessionId: message.sessionId,
    applicationProperties: properties,
    body: message.body as unknown,
    enqueuedTime: message.enqueuedTimeUtc,
    // The broker does not expose when it dead-lettered a message.
    deadLetteredTime: undefined,
    deliveryCount: message.deliveryCount ?? 0,
    reason: message.deadLetterReason ?? "",
    description: message.deadLetterErrorDescription ?? "",
  };
}

/**
 * The copy a replay sends: the body, ids and properties of the dead letter, and its session id
 * (the work queue is session-enabled: a message without one is refused). The broker's own
 * dead-letter properties are not copied.
 */
export function replayMessage(
  message: ServiceBusReceivedMessage,
  options: ReplayOptions = {},
  newId: () => string = randomUUID,
): ServiceBusMessage {
  const letter = toDeadLetter(message);
  return {
    body: message.body as unknown,
    messageId: options.newMessageId === true ? newId() : message.messageId,
    ...(message.contentType !== undefined ? { contentType: message.contentType } : {}),
    ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
    ...(message.sessionId !== undefined ? { sessionId: message.sessionId } : {}),
    ...(message.subject !== undefined ? { subject: message.subject } : {}),
    applicationProperties: { ...letter.applicationProperties },
  };
}

/**
 * A Service Bus queue's dead letters, read and settled with the caller's Entra identity (local
 * auth is off in Herald's namespace): listing needs Azure Service Bus Data Receiver on the queue,
 * replaying also Data Sender.
 */
export class ServiceBusDeadLetters implements DeadLetterStore {
  constructor(
    readonly where: string,
    private readonly receiver: DeadLetterReceiver,
    private readonly sender: () => ReplaySender,
    private readonly closeClient: () => Promise<void> = () => Promise.resolve(),
  ) {}

  async list(max: number): Promise<DeadLetter[]> {
    const found: DeadLetter[] = [];
    // The receiver remembers the last sequence number it peeked: each call reads on from there.
    while (found.length < max) {
      const page = await this.receiver.peekMessages(Math.min(PAGE, max - found.length));
      if (page.length === 0) break;
      found.push(...page.map(toDeadLetter));
    }
    return found;
  }

  replay(selection: DeadLetterSelection, options: ReplayOptions = {}): Promise<DeadLetter[]> {
    return this.#settle(selection, async (message) => {
      // Copy first, then complete: a failure in between leaves a duplicate, never a loss.
      await this.sender().sendMessages(replayMessage(message, options));
    });
  }

  purge(selection: DeadLetterSelection): Promise<DeadLetter[]> {
    return this.#settle(selection, () => Promise.resolve());
  }

  async close(): Promise<void> {
    await this.receiver.close();
    await this.closeClient();
  }

  /**
   * Receives (peek-lock) the dead letters, acts on and completes the selected ones and holds the
   * others locked, so the next receive returns new ones; abandons those at the end. Stops when
   * the dead-letter queue has nothing more to give or every id asked for was found.
   */
  async #settle(
    selection: DeadLetterSelection,
    act: (message: ServiceBusReceivedMessage) => Promise<void>,
  ): Promise<DeadLetter[]> {
    const done: DeadLetter[] = [];
    const held: ServiceBusReceivedMessage[] = [];
    const wanted = selection.kind === "ids" ? new Set(selection.ids) : undefined;
    try {
      while (wanted === undefined || wanted.size > 0) {
        const batch = await this.receiver.receiveMessages(PAGE, {
          maxWaitTimeInMs: RECEIVE_WAIT_MS,
        });
        if (batch.length === 0) break;
        for (const message of batch) {
          const letter = toDeadLetter(message);
          if (!isSelected(selection, letter)) {
            held.push(message);
            continue;
          }
          await act(message);
          await this.receiver.completeMessage(message);
          wanted?.delete(letter.id);
          done.push(letter);
        }
      }
    } finally {
      for (const message of held) await this.receiver.abandonMessage(message);
    }
    return done;
  }
}

/** Opens the dead-letter queue of `queueName` with DefaultAzureCredential or a connection string. */
export function openServiceBusDeadLetters(
  target: { readonly namespace: string } | { readonly connectionString: string },
  queueName: string,
): ServiceBusDeadLetters {
  // Loaded here, not at the top: the CLI's other commands never pay for the SDKs.
  const sb = serviceBusSdk();
  let client: InstanceType<typeof sb.ServiceBusClient>;
  let where: string;
  if ("namespace" in target) {
    const identity = identitySdk();
    client = new sb.ServiceBusClient(target.namespace, new identity.DefaultAzureCredential());
    where = `${target.namespace}/${queueName}/$deadletterqueue`;
  } else {
    client = new sb.ServiceBusClient(target.connectionString);
    where = `${queueName}/$deadletterqueue (connection string)`;
  }
  const receiver = client.createReceiver(queueName, {
    subQueueType: "deadLetter",
    receiveMode: "peekLock",
  });
  let sender: ServiceBusSender | undefined;
  return new ServiceBusDeadLetters(
    where,
    receiver,
    () => (sender ??= client.createSender(queueName)),
    async () => {
      await sender?.close();
      await client.close();
    },
  );
}
