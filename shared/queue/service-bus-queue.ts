import {
  DefaultAzureCredential,
  ManagedIdentityCredential,
  type TokenCredential,
} from "@azure/identity";
import {
  ServiceBusClient,
  type ServiceBusMessage,
  type ServiceBusMessageBatch,
  type ServiceBusSender,
} from "@azure/service-bus";

import type { ServiceBusConnection } from "../config";
import { ConfigError, HeraldError } from "../errors";
import type { OutgoingMessage, QueuePort } from "./queue-port";

/** The part of the SDK's sender this adapter uses: the seam unit tests fake. */
export type QueueSender = Pick<
  ServiceBusSender,
  "createMessageBatch" | "sendMessages" | "scheduleMessages" | "close"
>;

/** Our message -> the SDK's: id, correlation id and properties map one to one. */
export function toServiceBusMessage(message: OutgoingMessage): ServiceBusMessage {
  return {
    body: message.body,
    contentType: message.contentType ?? "application/json",
    ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
    ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
    ...(message.sessionId !== undefined ? { sessionId: message.sessionId } : {}),
    ...(message.applicationProperties !== undefined
      ? { applicationProperties: { ...message.applicationProperties } }
      : {}),
  };
}

/**
 * QueuePort on Azure Service Bus. `enqueue` packs messages into as few `createMessageBatch`
 * batches as the broker allows (one round trip per batch); `schedule` uses the broker's
 * scheduled enqueue time, so a retry or a `notBefore` costs no function time while it waits.
 */
export interface ServiceBusQueueOptions {
  /**
   * The queue is session-enabled (Herald's work queue): every message must name its session,
   * or the broker refuses it; checked here first, with the message id in the error.
   */
  readonly sessions?: boolean;
}

export class ServiceBusQueue implements QueuePort {
  constructor(
    private readonly sender: QueueSender,
    private readonly closeClient: () => Promise<void> = () => Promise.resolve(),
    private readonly options: ServiceBusQueueOptions = {},
  ) {}

  static fromConnection(
    connection: ServiceBusConnection,
    queueName: string,
    options: ServiceBusQueueOptions = {},
  ): ServiceBusQueue {
    let client: ServiceBusClient;
    if (connection.kind === "connectionString") {
      client = new ServiceBusClient(connection.connectionString);
    } else if (connection.kind === "identity") {
      const credential: TokenCredential =
        connection.clientId !== undefined
          ? new ManagedIdentityCredential({ clientId: connection.clientId })
          : new DefaultAzureCredential();
      client = new ServiceBusClient(connection.fullyQualifiedNamespace, credential);
    } else {
      throw new ConfigError(
        "ServiceBusConnection: not configured (set ServiceBusConnection__fullyQualifiedNamespace or a connection string)",
      );
    }
    return new ServiceBusQueue(client.createSender(queueName), () => client.close(), options);
  }

  private convert(message: OutgoingMessage): ServiceBusMessage {
    if (this.options.sessions === true) {
      const session = message.sessionId;
      if (session === undefined || session === "" || session.length > 128)
        throw new HeraldError(
          `Queue message ${message.messageId ?? "(no id)"} needs a session id of 1 to 128 characters on a session-enabled queue`,
        );
    }
    return toServiceBusMessage(message);
  }

  async enqueue(messages: readonly OutgoingMessage[]): Promise<void> {
    // Converted (and checked) up front: a bad message fails the call before any is sent.
    const converted = messages.map((m) => this.convert(m));
    let batch: ServiceBusMessageBatch | undefined;
    for (const [i, message] of messages.entries()) {
      const sbMessage = converted[i]!;
      batch ??= await this.sender.createMessageBatch();
      if (batch.tryAddMessage(sbMessage)) continue;
      if (batch.count === 0) {
        throw new HeraldError(
          `Queue message ${message.messageId ?? "(no id)"} is larger than a Service Bus batch (${batch.maxSizeInBytes} bytes)`,
        );
      }
      await this.sender.sendMessages(batch);
      batch = await this.sender.createMessageBatch();
      if (!batch.tryAddMessage(sbMessage)) {
        throw new HeraldError(
          `Queue message ${message.messageId ?? "(no id)"} is larger than a Service Bus batch (${batch.maxSizeInBytes} bytes)`,
        );
      }
    }
    if (batch !== undefined && batch.count > 0) await this.sender.sendMessages(batch);
  }

  async schedule(message: OutgoingMessage, at: Date): Promise<void> {
    await this.sender.scheduleMessages(this.convert(message), at);
  }

  async close(): Promise<void> {
    await this.sender.close();
    await this.closeClient();
  }
}
