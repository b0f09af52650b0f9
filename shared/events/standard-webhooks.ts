import { createHmac } from "node:crypto";

import { isLoopback } from "../connector/service-url-policy";

/**
 * Signing as the Standard Webhooks specification says
 * (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
 * the secret is `whsec_` and 24-64 random bytes in base64; each POST carries `webhook-id` (the
 * message's id, the same on every retry), `webhook-timestamp` (Unix seconds) and
 * `webhook-signature`, `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with
 * the secret's bytes.
 */
const SECRET_PREFIX = "whsec_";
const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;

export type SecretVerdict =
  { readonly ok: true; readonly key: Buffer } | { readonly ok: false; readonly reason: string };

/** The signing key of a `whsec_<base64>` secret, or why the text is not one. */
export function parseWebhookSecret(secret: string): SecretVerdict {
  const text = secret.trim();
  if (text.startsWith("@Microsoft.KeyVault("))
    return {
      ok: false,
      reason:
        "is an unresolved Key Vault reference: check the reference and that the Function App's identity may read the secret",
    };
  if (!text.startsWith(SECRET_PREFIX))
    return { ok: false, reason: `must start with ${SECRET_PREFIX} (whsec_<base64>)` };
  const encoded = text.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0)
    return { ok: false, reason: "must be whsec_ followed by base64" };
  const key = Buffer.from(encoded, "base64");
  if (key.length < MIN_SECRET_BYTES || key.length > MAX_SECRET_BYTES)
    return {
      ok: false,
      reason: `must hold ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} random bytes (it holds ${key.length})`,
    };
  return { ok: true, key };
}

export interface SignedHeaders {
  readonly "webhook-id": string;
  readonly "webhook-timestamp": string;
  readonly "webhook-signature": string;
}

/** The three headers of one POST of `body` (the exact bytes sent). */
export function signWebhook(key: Buffer, id: string, at: Date, body: string): SignedHeaders {
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const signature = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return {
    "webhook-id": id,
    "webhook-timestamp": timestamp,
    "webhook-signature": `v1,${signature}`,
  };
}

export type UrlVerdict =
  { readonly ok: true; readonly url: string } | { readonly ok: false; readonly reason: string };

/**
 * Where events may be posted: https, or plain http to a loopback address in local mode (no bot
 * app id, not in Azure), so a local receiver works and a deployment never sends in the clear.
 */
export function checkWebhookUrl(text: string, options: { readonly local: boolean }): UrlVerdict {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return { ok: false, reason: "is not a URL" };
  }
  if (url.username !== "" || url.password !== "")
    return { ok: false, reason: "must not carry credentials (the signature authenticates)" };
  if (url.protocol === "https:") return { ok: true, url: url.toString() };
  if (url.protocol === "http:" && options.local && isLoopback(url.hostname.toLowerCase()))
    return { ok: true, url: url.toString() };
  return {
    ok: false,
    reason: options.local
      ? "must be https, or http to a loopback address (127.0.0.1, localhost, [::1])"
      : "must be https",
  };
}
