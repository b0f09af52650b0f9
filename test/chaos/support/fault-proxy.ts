import { createServer, request as httpRequest, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

import { seededRandom } from "../../simulator/faults";

export interface FaultProxyOptions {
  /** Where calls that get through go: the simulator's origin, `http://127.0.0.1:<port>`. */
  readonly target: string;
  /** Share of calls held without an answer until the caller gives up (a timeout). */
  readonly timeoutRate: number;
  /** Share of calls whose connection is dropped before they reach Teams. */
  readonly resetRate: number;
  readonly seed: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>/`: the service URL the user references carry. */
  readonly serviceUrl: string;
  readonly stats: {
    forwarded: number;
    timedOut: number;
    reset: number;
    /**
     * Calls Teams accepted (2xx) after the caller had given up on them (its timeout passed
     * while the simulator was slow): the one way this storm can legitimately duplicate.
     */
    lateAccepted: number;
  };
  close(): Promise<void>;
}

/**
 * Stands between Herald and the Teams simulator to add what the simulator cannot answer:
 * calls that time out and connections that drop. Both happen *before* the call reaches the
 * simulator, so Teams never saw them (no duplicate is expected from them). Loopback only.
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const random = seededRandom(options.seed);
  const stats = { forwarded: 0, timedOut: 0, reset: 0, lateAccepted: 0 };
  const held = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const target = new URL(options.target);

  const server = createServer((req, res) => {
    const roll = random();
    if (roll < options.timeoutRate) {
      stats.timedOut += 1;
      held.add(res);
      res.on("close", () => held.delete(res));
      req.resume();
      return;
    }
    if (roll < options.timeoutRate + options.resetRate) {
      stats.reset += 1;
      req.socket.destroy();
      return;
    }
    stats.forwarded += 1;
    let callerGone = false;
    res.on("close", () => {
      if (!res.writableFinished) callerGone = true;
    });
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        const status = answer.statusCode ?? 502;
        if ((callerGone || res.destroyed) && status < 300) stats.lateAccepted += 1;
        res.writeHead(status, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => req.socket.destroy());
    req.pipe(upstream);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return {
    serviceUrl: `http://127.0.0.1:${port}/`,
    stats,
    close: () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };
}
