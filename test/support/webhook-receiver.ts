import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A LOB app's webhook receiver on 127.0.0.1: it keeps every POST it answered, and can be told to
 * be down for the next few (answering 503) or gone (410).
 */
export interface ReceivedPost {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** What the receiver answered. */
  readonly status: number;
  /** When it came, by the receiver's clock (`clock`). */
  readonly receivedAt: Date;
}

export interface WebhookReceiver {
  readonly url: string;
  /** A fresh secret in the spec's form, `whsec_` + base64 of 32 random bytes. */
  readonly secret: string;
  readonly posts: ReceivedPost[];
  /** The receiver's clock (default the real one; a test whose clock runs ahead sets its own). */
  clock: () => Date;
  /** The next `count` POSTs are answered `status` (503: down; 410: gone). */
  answerNext(count: number, status: number, headers?: Record<string, string>): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  // eslint-disable-next-line prefer-const -- assigned below, read by the server's handler
  let receiver: WebhookReceiver;
  const posts: ReceivedPost[] = [];
  const planned: { status: number; headers: Record<string, string> }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const answer = planned.shift() ?? { status: 204, headers: {} };
      posts.push({
        headers: Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [
            k,
            Array.isArray(v) ? v.join(",") : (v ?? ""),
          ]),
        ),
        body: Buffer.concat(chunks).toString("utf8"),
        status: answer.status,
        receivedAt: receiver.clock(),
      });
      res.writeHead(answer.status, answer.headers);
      res.end();
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  receiver = {
    clock: () => new Date(),
    url: `http://127.0.0.1:${port}/herald-events`,
    secret: `whsec_${randomBytes(32).toString("base64")}`,
    posts,
    answerNext(count, status, headers = {}) {
      for (let i = 0; i < count; i++) planned.push({ status, headers });
    },
    close: () =>
      new Promise<void>((done, fail) => {
        server.closeAllConnections();
        server.close((error) => (error ? fail(error) : done()));
      }),
  };
  return receiver;
}

/**
 * A receiver's check, written from the Standard Webhooks specification
 * (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md),
 * not from Herald's signer: the signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the
 * key is the base64 after `whsec_`; `webhook-signature` is a space-separated list of
 * `v1,<base64 HMAC-SHA256>`, any of which may match; a timestamp more than five minutes away
 * from the receiver's clock is refused (replay protection).
 */
export function verifyStandardWebhook(
  secret: string,
  headers: Readonly<Record<string, string>>,
  body: string,
  nowSeconds: number,
): { readonly ok: true; readonly id: string } | { readonly ok: false; readonly reason: string } {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (id === undefined || timestamp === undefined || signatures === undefined)
    return { ok: false, reason: "missing headers" };
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > 5 * 60)
    return { ok: false, reason: "timestamp outside the tolerance" };
  if (!secret.startsWith("whsec_")) return { ok: false, reason: "not a whsec_ secret" };
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest();
  for (const entry of signatures.split(" ")) {
    const [version, signature] = entry.split(",", 2);
    if (version !== "v1" || signature === undefined) continue;
    const given = Buffer.from(signature, "base64");
    if (given.length === expected.length && timingSafeEqual(given, expected))
      return { ok: true, id };
  }
  return { ok: false, reason: "no signature matches" };
}
