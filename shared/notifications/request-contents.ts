import type { ActionResponses } from "../model/action-responses";
import type { NotificationMessage } from "../model/message";
import type {
  NotificationRequestStore,
  RequestKey,
  StoredRequest,
} from "../store/notification-requests";
import { BoundedMap } from "../util/bounded-map";

/** What a delivery needs of its request. */
export interface RequestContent {
  readonly message: NotificationMessage;
  readonly summary?: string | undefined;
  /** The revision this content is (1: as first accepted). */
  readonly revision: number;
  /** The request was recalled: nothing more is sent. */
  readonly recalled: boolean;
  /** The request's answer per verb (what a clicked copy becomes: answered-copy.ts). */
  readonly actions?: ActionResponses | undefined;
  /**
   * One person's copy only: the sequence of their per-recipient update this content is, and
   * when it was accepted (copy-content.ts); undefined for the request's own content.
   */
  readonly override?: number | undefined;
  readonly overrideAt?: string | undefined;
}

/** How a content came to be known: read from the store now, or handed over (possibly older). */
interface Kept {
  readonly content: RequestContent;
  /** When it was read from the store; undefined when handed over by work that carried it. */
  readonly readAt: number | undefined;
}

/** Requests whose content is kept at once (a fan-out's deliveries share one). */
const KEPT = 500;

/** The content of a stored request, as deliveries use it. */
export function contentOf(stored: StoredRequest): RequestContent | undefined {
  if (stored.message === undefined) return undefined;
  return {
    message: stored.message,
    summary: stored.summary,
    revision: stored.revision ?? 1,
    recalled: stored.recalledAt !== undefined,
    actions: stored.actions,
  };
}

/**
 * The content of the requests this process delivers. A request may be updated or recalled after
 * it was accepted, so each kept content carries its revision, and a newer revision never gives
 * way to an older one handed over later (a dispatch carrying the content it was queued with).
 * `get` answers from memory whenever it can (the steady path of a request never updated reads
 * nothing); `fresh` re-reads what is older than the caller allows, so work that runs for a
 * while (a fan-out's deliveries) learns of an update or a recall within that time, at the cost
 * of one read per request and window rather than one per recipient.
 */
export class RequestContents {
  private readonly kept = new BoundedMap<string, Kept>(KEPT);

  constructor(
    private readonly requests: Pick<NotificationRequestStore, "get">,
    private readonly now: () => number = Date.now,
  ) {}

  /** The request's content, from memory or the store; undefined when none is stored. */
  async get(request: RequestKey): Promise<RequestContent | undefined> {
    return this.kept.get(keyOf(request))?.content ?? this.read(request);
  }

  /**
   * The content as of at most `maxAgeMs` ago, and at least revision `atLeast`: from memory when
   * what is kept qualifies, else read from the store.
   */
  async fresh(
    request: RequestKey,
    options: { readonly maxAgeMs: number; readonly atLeast?: number },
  ): Promise<RequestContent | undefined> {
    const kept = this.kept.get(keyOf(request));
    if (
      kept !== undefined &&
      kept.readAt !== undefined &&
      this.now() - kept.readAt <= options.maxAgeMs &&
      kept.content.revision >= (options.atLeast ?? 1)
    )
      return kept.content;
    return this.read(request);
  }

  /** What is kept of the request, without reading: undefined when nothing is. */
  peek(request: RequestKey): RequestContent | undefined {
    return this.kept.get(keyOf(request))?.content;
  }

  /**
   * A request's content known elsewhere: `readAt` when the caller just read it from the store,
   * none when it was carried in a work item (then it may be older than the store's).
   */
  remember(request: RequestKey, content: RequestContent, readAt?: number): void {
    const key = keyOf(request);
    const kept = this.kept.get(key);
    if (kept !== undefined && !newer(content, readAt, kept)) return;
    this.kept.set(key, { content, readAt });
  }

  private async read(request: RequestKey): Promise<RequestContent | undefined> {
    const stored = await this.requests.get(request);
    if (stored === undefined) return undefined;
    const content = contentOf(stored);
    if (content !== undefined) this.remember(request, content, this.now());
    return content;
  }
}

/** Whether `content` should replace what is kept: a later revision, or the same one read later. */
function newer(content: RequestContent, readAt: number | undefined, kept: Kept): boolean {
  if (content.recalled !== kept.content.recalled) return content.recalled;
  if (content.revision !== kept.content.revision) return content.revision > kept.content.revision;
  return readAt !== undefined && (kept.readAt === undefined || readAt >= kept.readAt);
}

function keyOf(request: RequestKey): string {
  return `${request.tenantId.toLowerCase()}\n${request.id}`;
}
