import type { LogHandler } from "@azure/functions";

import type { Logger, LogProperties } from "../shared/logging";

/**
 * Where the benchmark's function invocations log: lines are formatted by Herald as usual, then
 * counted instead of printed (the Functions host would ship them to Application Insights).
 * Keeps the `metric <name>` counts and the first few warnings and errors for the report.
 */
export class LogCounter {
  readonly levels: Record<string, number> = {};
  readonly metrics: Record<string, number> = {};
  readonly samples: string[] = [];
  /** Lines containing each of these texts (events the report checks happened). */
  readonly events: Record<string, number> = {};

  constructor(private readonly watch: readonly string[] = []) {}

  readonly handler: LogHandler = (level, ...args) => {
    this.levels[level] = (this.levels[level] ?? 0) + 1;
    const line = args.map(String).join(" ");
    for (const text of this.watch)
      if (line.includes(text)) this.events[text] = (this.events[text] ?? 0) + 1;
    if (line.startsWith("metric ")) {
      const name = line.slice(7).split(" ", 1)[0] ?? "";
      const value = /"value":(\d+)/.exec(line)?.[1];
      this.metrics[name] = (this.metrics[name] ?? 0) + Number(value ?? 1);
    } else if ((level === "warning" || level === "error") && this.samples.length < 5) {
      this.samples.push(`${level}: ${line.slice(0, 300)}`);
    }
  };

  /** A `Logger` over the same counts, for composition-root loggers (connector warnings…). */
  logger(base: LogProperties = {}): Logger {
    const emit = (level: "information" | "warning" | "error") => (m: string, p?: LogProperties) =>
      this.handler(level, p === undefined ? m : `${m} ${JSON.stringify({ ...base, ...p })}`);
    return {
      info: emit("information"),
      warn: emit("warning"),
      error: emit("error"),
      with: (p) => this.logger({ ...base, ...p }),
    };
  }
}
