import type { HttpResponseInit } from "@azure/functions";

/**
 * The request and response shapes `CloudAdapter.process` checks at run time (it was written
 * for Express/Restify): a request with an already-parsed body, a response with `status`,
 * `header`, `send` and `end`. This bridges them to the Functions v4 model.
 */
export interface BotRequest {
  method: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

export class BotResponse {
  /** Part of botbuilder's Response type (for web sockets); there is none over Functions HTTP. */
  readonly socket: unknown = undefined;
  statusCode = 200;
  readonly headers: Record<string, string> = {};
  body: unknown = undefined;
  ended = false;

  status(code: number): this {
    this.statusCode = code;
    return this;
  }

  header(name: string, value: unknown): this {
    this.headers[name] = String(value);
    return this;
  }

  send(body: unknown): this {
    this.body = body;
    return this;
  }

  end(): this {
    this.ended = true;
    return this;
  }

  toHttpResponse(): HttpResponseInit {
    if (this.body === undefined || this.body === null || this.body === "") {
      return { status: this.statusCode, headers: this.headers };
    }
    if (typeof this.body === "string") {
      return { status: this.statusCode, headers: this.headers, body: this.body };
    }
    return { status: this.statusCode, headers: this.headers, jsonBody: this.body };
  }
}
