import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A host standing in for a forger's: it answers 200 and records every request that reaches it. */
export interface Listener {
  readonly url: string;
  readonly hits: string[];
  /** The same requests with their JSON bodies (undefined when there was none or it was not JSON). */
  readonly received: { readonly method: string; readonly url: string; readonly body: unknown }[];
  close(): Promise<void>;
}

export async function startListener(): Promise<Listener> {
  const hits: string[] = [];
  const received: Listener["received"] = [];
  const server: Server = createServer((req, res) => {
    hits.push(`${req.method ?? ""} ${req.url ?? ""}`);
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      let body: unknown;
      try {
        body = chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        body = undefined;
      }
      received.push({ method: req.method ?? "", url: req.url ?? "", body });
      res.writeHead(200, { "content-type": "application/json" }).end('{"id":"x"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    hits,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
