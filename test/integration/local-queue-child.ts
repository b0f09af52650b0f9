import { appendFileSync } from "node:fs";

import { LocalQueue } from "../../shared/queue/local-queue";

/**
 * Another process on the local broker's database (forked by `local-queue.test.ts`, bundled
 * first): a LOB sender, a consumer that dies holding a lock, or one of many receivers. Settings
 * come as JSON in `HERALD_QUEUE_CHILD`; it answers on the IPC channel.
 * - `send`: sends `count` messages with ids `<pid>-<n>`, ten per call, then answers "sent";
 * - `hold`: receives one message and answers its id, then holds the lock until killed;
 * - `receive`: receives and completes until told "stop", appending `<messageId> <deliveryCount>`
 *   per message to `logFile` (one short append each: atomic across processes).
 */
interface ChildSettings {
  readonly mode: "send" | "hold" | "receive";
  readonly directory: string;
  readonly count?: number;
  readonly logFile?: string;
}

const settings = JSON.parse(process.env.HERALD_QUEUE_CHILD ?? "{}") as ChildSettings;
const queue = new LocalQueue({ directory: settings.directory });

if (settings.mode === "send") {
  const count = settings.count ?? 0;
  for (let i = 0; i < count; i += 10) {
    const n = Math.min(10, count - i);
    queue.send(
      Array.from({ length: n }, (_, j) => ({
        body: { n: i + j },
        messageId: `${process.pid}-${i + j}`,
      })),
    );
  }
  process.send?.("sent");
} else if (settings.mode === "hold") {
  const [message] = queue.receive(1);
  process.send?.({ messageId: message?.messageId });
  setInterval(() => undefined, 1000); // holds the lock until killed
} else {
  let running = true;
  process.on("message", (m) => (running = m !== "stop"));
  const loop = () => {
    if (!running) return process.exit(0);
    for (const message of queue.receive(1 + Math.floor(Math.random() * 3))) {
      appendFileSync(settings.logFile!, `${message.messageId} ${message.deliveryCount}\n`);
      queue.complete(message);
    }
    setImmediate(loop);
  };
  process.send?.("ready");
  loop();
}
