import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { InvocationContext } from "@azure/functions";

import { loadConfig } from "../../shared/config";
import { ConfigError } from "../../shared/errors";
import {
  createWorkQueueHandler,
  decodeBody,
  queueMessageInfo,
  type WorkHandlers,
} from "../../shared/notifications/queue-handler";
import { WORK_KIND_VALUES } from "../../shared/notifications/work-items";
import { createWorkQueue } from "../../shared/queue/create-queue";
import { LocalQueue } from "../../shared/queue/local-queue";
import { ServiceBusQueue } from "../../shared/queue/service-bus-queue";

function context(triggerMetadata: Record<string, unknown>): InvocationContext {
  return new InvocationContext({ invocationId: "inv-1", triggerMetadata, logHandler: () => {} });
}

describe("work queue handler", () => {
  function recordingHandlers() {
    const calls: { kind: string; body: unknown; messageId: string; deliveryCount: number }[] = [];
    const record =
      (kind: string) => (body: unknown, info: { messageId: string; deliveryCount: number }) => {
        calls.push({ kind, body, messageId: info.messageId, deliveryCount: info.deliveryCount });
        return Promise.resolve();
      };
    const handlers = Object.fromEntries(
      WORK_KIND_VALUES.map((kind) => [kind, record(kind)]),
    ) as unknown as WorkHandlers;
    return { calls, handler: createWorkQueueHandler(() => handlers) };
  }

  it.each([...WORK_KIND_VALUES])(
    "dispatches heraldKind %s to its handler with the trigger's metadata",
    async (kind) => {
      const { calls, handler } = recordingHandlers();
      await handler(
        { x: 1 },
        context({ messageId: "m", deliveryCount: 3, applicationProperties: { heraldKind: kind } }),
      );
      expect(calls).toEqual([{ kind, body: { x: 1 }, messageId: "m", deliveryCount: 3 }]);
    },
  );

  it("drops a work item whose tenant is not its session's instead of running it there", async () => {
    const { calls, handler } = recordingHandlers();
    await handler(
      { tenantId: "tenant-b" },
      context({
        messageId: "m",
        deliveryCount: 1,
        sessionId: "tenant-a",
        applicationProperties: { heraldKind: "delivery" },
      }),
    );
    expect(calls).toEqual([]);
  });

  it("leaves a message of an unknown kind to the broker's redelivery instead of dropping it", async () => {
    const { calls, handler } = recordingHandlers();
    await expect(
      handler(
        {},
        context({
          messageId: "m",
          deliveryCount: 1,
          applicationProperties: { heraldKind: "toString" },
        }),
      ),
    ).rejects.toThrow(/Unknown heraldKind "toString"/);
    expect(calls).toEqual([]);
  });

  it("reads the older userProperties name and defaults a missing delivery count to 1", () => {
    const info = queueMessageInfo(
      context({ messageId: "m", userProperties: { heraldKind: "delivery" } }),
    );
    expect(info).toMatchObject({
      messageId: "m",
      deliveryCount: 1,
      applicationProperties: { heraldKind: "delivery" },
    });
  });

  it("parses JSON text and bytes, and passes anything else through for validation", () => {
    expect(decodeBody('{"a":1}')).toEqual({ a: 1 });
    expect(decodeBody(Buffer.from('{"a":2}'))).toEqual({ a: 2 });
    expect(decodeBody("plain words")).toBe("plain words");
    expect(decodeBody({ a: 3 })).toEqual({ a: 3 });
  });
});

describe("createWorkQueue", () => {
  const base = { TableStorageConnection: "UseDevelopmentStorage=true" };

  it("uses Service Bus when a connection is configured", async () => {
    const queue = createWorkQueue(
      loadConfig({
        ...base,
        ServiceBusConnection:
          "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=a2V5",
      }),
    );
    expect(queue).toBeInstanceOf(ServiceBusQueue);
    await (queue as ServiceBusQueue).close();
  });

  it("uses the local broker's session queue when only LocalQueueDirectory is set", () => {
    const directory = mkdtempSync(join(tmpdir(), "herald-queue-"));
    const queue = createWorkQueue(loadConfig({ ...base, LocalQueueDirectory: directory }));
    try {
      expect(queue).toBeInstanceOf(LocalQueue);
      expect(queue).toMatchObject({ queueName: "herald-work", sessions: true });
    } finally {
      (queue as LocalQueue).close();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it("fails with a ConfigError naming the settings when neither is set", () => {
    expect(() => createWorkQueue(loadConfig(base))).toThrow(ConfigError);
    expect(() => createWorkQueue(loadConfig(base))).toThrow(
      /ServiceBusConnection__fullyQualifiedNamespace.*LocalQueueDirectory/,
    );
  });
});
