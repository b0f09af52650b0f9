import type { GraphPort } from "./graph-port";

export type CatalogAppIdResult =
  | { readonly kind: "found"; readonly catalogAppId: string }
  /** The app is not (yet) in the org catalog: a new upload may take hours to show in Graph. */
  | { readonly kind: "not-published" };

export interface CatalogAppIdsOptions {
  /** `TeamsAppId`: the manifest id, the catalog's `externalId`. */
  readonly teamsAppId: string;
  /** `TeamsAppCatalogId`: when set, no lookup is ever made. */
  readonly teamsAppCatalogId?: string | undefined;
  /** How long "not published" is believed before asking again (default 5 minutes). */
  readonly notPublishedTtlMs?: number;
  readonly now?: () => number;
}

/**
 * The app's catalog id, looked up once per process (the catalog id of a published app never
 * changes) and shared by concurrent callers. "Not published" is remembered only briefly, so an
 * app an admin publishes is picked up without a restart. A failed lookup (GraphError) is not
 * remembered: the next caller tries again.
 */
export class CatalogAppIds {
  private found: string | undefined;
  private notPublishedUntil = 0;
  private pending: Promise<CatalogAppIdResult> | undefined;

  constructor(
    private readonly graph: GraphPort,
    private readonly options: CatalogAppIdsOptions,
  ) {
    this.found = options.teamsAppCatalogId;
  }

  async resolve(): Promise<CatalogAppIdResult> {
    if (this.found !== undefined) return { kind: "found", catalogAppId: this.found };
    const now = (this.options.now ?? Date.now)();
    if (now < this.notPublishedUntil) return { kind: "not-published" };
    this.pending ??= this.lookUp(now).finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async lookUp(now: number): Promise<CatalogAppIdResult> {
    const result = await this.graph.findAppByExternalId(this.options.teamsAppId);
    if (result.kind === "found") {
      this.found = result.catalogAppId;
      return result;
    }
    this.notPublishedUntil = now + (this.options.notPublishedTtlMs ?? 5 * 60 * 1000);
    return { kind: "not-published" };
  }
}
