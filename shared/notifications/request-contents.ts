import type { NotificationMessage } from "../model/message";
import type { NotificationRequestStore, RequestKey } from "../store/notification-requests";
import { BoundedMap } from "../util/bounded-map";

/** What a delivery needs of its request. */
export interface RequestContent {
  readonly message: NotificationMessage;
  readonly summary?: string | undefined;
}

/** Requests whose content is kept at once (a fan-out's deliveries share one). */
const KEPT = 500;

/**
 * The content of the requests this process delivers, read once: it never changes once
 * accepted, and the dispatch that fans a request out hands over what it already read.
 */
export class RequestContents {
  private readonly kept = new BoundedMap<string, RequestContent>(KEPT);

  constructor(private readonly requests: Pick<NotificationRequestStore, "get">) {}

  /** The request's message, from memory or the store; undefined when none is stored. */
  async get(request: RequestKey): Promise<RequestContent | undefined> {
    const cached = this.kept.get(keyOf(request));
    if (cached !== undefined) return cached;
    const stored = await this.requests.get(request);
    if (stored?.message === undefined) return undefined;
    const content = { message: stored.message, summary: stored.summary };
    this.remember(request, content);
    return content;
  }

  /** A request's content known elsewhere (the dispatch read it, or carried it). */
  remember(request: RequestKey, content: RequestContent): void {
    this.kept.set(keyOf(request), content);
  }
}

function keyOf(request: RequestKey): string {
  return `${request.tenantId.toLowerCase()}\n${request.id}`;
}
