import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import type { TablesTarget } from "./jobs";

/**
 * A counting HTTP proxy in front of Azurite's Table endpoint: every round trip Herald makes to
 * Table Storage (a transaction is one) passes through it and is counted, the way the issue's
 * figure was measured. Shared-key signatures cover the path, not the host, so the proxy is
 * transparent to the SDK.
 */
export class TableRequestCounter {
  private constructor(
    private readonly server: Server,
    readonly target: TablesTarget,
    private readonly counted: { n: number },
  ) {}

  get count(): number {
    return this.counted.n;
  }

  static async start(tables: TablesTarget): Promise<TableRequestCounter> {
    const match = /TableEndpoint=http:\/\/([^:/;]+):(\d+)/.exec(tables.connectionString);
    if (match === null) throw new Error("bench: no http TableEndpoint in the connection string");
    const [, host, port] = match;
    const counted = { n: 0 };
    const server = createServer((req, res) => {
      // Table creation (`/Tables`) is set-up, not a notification's work.
      if (!/^\/[^/]+\/Tables(\(|$|\?)/.test(req.url ?? "")) counted.n += 1;
      const upstream = httpRequest(
        { host, port: Number(port), method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const proxied = (server.address() as AddressInfo).port;
    return new TableRequestCounter(
      server,
      {
        ...tables,
        connectionString: tables.connectionString.replace(
          /TableEndpoint=http:\/\/[^:/;]+:\d+/,
          `TableEndpoint=http://127.0.0.1:${proxied}`,
        ),
      },
      counted,
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
