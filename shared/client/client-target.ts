import type { TokenCredential } from "@azure/identity";

import { HeraldError } from "../errors";
import type { QueuePort } from "../queue/queue-port";

/** Where `send` puts requests: exactly one of these. */
export type NotificationClientTarget =
  /** Service Bus with Entra ID: `DefaultAzureCredential` unless a credential is given. */
  | { readonly fullyQualifiedNamespace: string; readonly credential?: TokenCredential }
  /** Service Bus with a connection string (local development, the emulator). */
  | { readonly connectionString: string }
  /** The local broker's folder `npm start` drains (`LocalQueueDirectory`, `.data/queue` by default). */
  | { readonly localQueueDirectory: string }
  /** Herald's HTTP API, for apps that cannot reach Service Bus. */
  | { readonly endpoint: string; readonly functionKey?: string }
  /** Any QueuePort (tests, or a queue the app already has). */
  | { readonly queue: QueuePort; readonly description?: string };

/** The target names exactly one place, and that place is not blank. */
export function checkTarget(target: NotificationClientTarget): void {
  const kinds = (
    [
      "fullyQualifiedNamespace",
      "connectionString",
      "localQueueDirectory",
      "endpoint",
      "queue",
    ] as const
  ).filter((k) => k in target && (target as Record<string, unknown>)[k] !== undefined);
  if (kinds.length !== 1) {
    throw new HeraldError(
      `NotificationClient needs exactly one of fullyQualifiedNamespace, connectionString, localQueueDirectory, endpoint, queue (got ${kinds.length === 0 ? "none" : kinds.join(", ")})`,
    );
  }
  const value = (target as Record<string, unknown>)[kinds[0]!];
  if (kinds[0] !== "queue" && (typeof value !== "string" || value.trim() === "")) {
    throw new HeraldError(`NotificationClient: ${kinds[0]!} must be a non-empty string`);
  }
}
