import {
  attachAzurite,
  type AttachedAzurite,
  AZURITE_DAEMON,
  DEFAULT_IDLE_MS,
} from "./azurite-client";

/** Azurite's usual Table port: what `UseDevelopmentStorage=true` and the sample point at. */
export const AZURITE_TABLE_PORT = 10002;

/** How `npm start` runs the data folder's Azurite (main.ts `DevelopmentHostOptions` has them). */
export interface TablesOptions {
  readonly azuriteDaemon?: string | undefined;
  readonly azuriteIdleMs?: number | undefined;
  readonly onAzuriteLost?: ((description: string) => void) | undefined;
}

export type TablesPlan =
  { kind: "embedded"; port: number; explicit: boolean } | { kind: "external"; description: string };

/** Start Azurite only when the settings point at the local development account (or nowhere). */
export function planTables(values: Readonly<Record<string, string>>, port: number): TablesPlan {
  const uri = values.TableStorageConnection__tableServiceUri?.trim();
  if (uri) return { kind: "external", description: uri };
  const connection = values.TableStorageConnection?.trim();
  if (!connection) return { kind: "embedded", port, explicit: false };
  if (/^UseDevelopmentStorage=true;?$/i.test(connection)) {
    return { kind: "embedded", port: AZURITE_TABLE_PORT, explicit: true };
  }
  const endpoint =
    /TableEndpoint=http:\/\/(?:127\.0\.0\.1|localhost):(\d+)\/devstoreaccount1/i.exec(connection);
  if (endpoint) return { kind: "embedded", port: Number(endpoint[1]), explicit: true };
  return { kind: "external", description: "TableStorageConnection (connection string)" };
}

export interface StartedTables {
  readonly azurite: AttachedAzurite | undefined;
  /** Where the data lives; undefined when in someone else's Azurite. */
  readonly dataDir: string | undefined;
}

const portInUseExplicit = (port: number) =>
  `Port ${port} is in use: using the Azurite already listening there.`;

/**
 * The data folder's own Azurite, as Table Storage is to a Function App: a process of its own that
 * this host attaches to (started if none serves the folder), and that no crash of this host can
 * stop or roll back. Never tables in memory: if it cannot be reached or started, start-up fails.
 */
export async function startTables(
  plan: TablesPlan & { kind: "embedded" },
  dataDir: string,
  out: (line: string) => void,
  options: TablesOptions,
): Promise<StartedTables> {
  try {
    const azurite = await attachAzurite({
      dataDir,
      port: plan.port,
      fallbackToFreePort: !plan.explicit,
      idleMs: options.azuriteIdleMs ?? DEFAULT_IDLE_MS,
      daemonScript: options.azuriteDaemon ?? AZURITE_DAEMON,
      onLost:
        options.onAzuriteLost ??
        ((how) =>
          out(`${how}: Table Storage is gone. Stop npm start (Ctrl+C) and start it again.`)),
    });
    return { azurite, dataDir };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || !plan.explicit) throw error;
    // The settings name that port: most likely the developer's own Azurite. Use it.
    out(portInUseExplicit(plan.port));
    return { azurite: undefined, dataDir: undefined };
  }
}
