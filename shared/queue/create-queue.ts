import type { Config } from "../config";
import { ConfigError } from "../errors";
import type { QueuePort } from "./queue-port";

export type QueueConfig = Pick<Config, "serviceBus" | "workQueueName" | "localQueueDirectory">;
export type TopicConfig = Pick<Config, "serviceBus" | "localQueueDirectory" | "events">;

/**
 * The queue Herald sends to: its internal work queue (Herald never sends to the LOB-facing
 * intake queue, it only reads it). Service Bus when a connection is configured (always in
 * Azure), else the local broker's queue `npm start` drains. Each adapter is required only when
 * chosen, so Azure never loads the local queue and a local run never loads the Service Bus SDK.
 */
export function createWorkQueue(config: QueueConfig): QueuePort {
  /* eslint-disable @typescript-eslint/no-require-imports -- lazy: each adapter loads only when chosen */
  if (config.serviceBus.kind !== "none") {
    const { ServiceBusQueue } =
      require("./service-bus-queue") as typeof import("./service-bus-queue");
    return ServiceBusQueue.fromConnection(config.serviceBus, config.workQueueName, {
      sessions: true,
    });
  }
  if (config.localQueueDirectory !== undefined) {
    const { LocalQueue } = require("./local-queue") as typeof import("./local-queue");
    return new LocalQueue({
      directory: config.localQueueDirectory,
      queueName: config.workQueueName,
      sessions: true,
    });
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
  throw new ConfigError(
    "No queue configured: set ServiceBusConnection__fullyQualifiedNamespace (Azure), ServiceBusConnection (a connection string), or LocalQueueDirectory (npm start)",
  );
}

/**
 * The topic events are published to: Service Bus when a connection is configured, else the local
 * broker's topic beside its queues (`npm start`). Like the work queue, each adapter loads only
 * when chosen.
 */
export function createEventTopic(config: TopicConfig): QueuePort {
  /* eslint-disable @typescript-eslint/no-require-imports -- lazy: each adapter loads only when chosen */
  if (config.serviceBus.kind !== "none") {
    const { ServiceBusQueue } =
      require("./service-bus-queue") as typeof import("./service-bus-queue");
    return ServiceBusQueue.fromConnection(config.serviceBus, config.events.topicName);
  }
  if (config.localQueueDirectory !== undefined) {
    const { LocalTopic } = require("./local-topic") as typeof import("./local-topic");
    return new LocalTopic({
      directory: config.localQueueDirectory,
      topicName: config.events.topicName,
    });
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
  throw new ConfigError(
    "No topic for events: configure Service Bus (ServiceBusConnection__fullyQualifiedNamespace) or LocalQueueDirectory (npm start), or set NotificationEvents to false",
  );
}
