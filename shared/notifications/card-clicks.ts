import { cardActionEvent } from "../events/event-factory";
import type { Logger } from "../logging";
import type { ActionResponse } from "../model/action-responses";
import {
  type CardReference,
  cardReferenceSchema,
  MAX_VERB_LENGTH,
  sameToken,
  splitClickData,
} from "../model/card-actions";
import type { CloudEvent } from "../model/cloud-event";
import type { QueuePort } from "../queue/queue-port";
import type { Delivery, DeliveryLedger } from "../store/delivery-ledger";
import type { NotificationRequestStore, StoredRequest } from "../store/notification-requests";
import type { RecordedAction } from "../store/recorded-actions";
import { withEvents } from "../store/stored-events";
import { answerMessage, answerPending } from "./answered-copy";
import type { EventOutbox } from "./event-outbox";
import { metric } from "./metrics";

/** A button press as the bot endpoint read it from Teams' activity. */
export interface CardClick {
  readonly type: "Action.Execute" | "Action.Submit";
  /** The activity's tenant (lower-cased). */
  readonly tenantId: string;
  /** Who clicked, as Teams says. */
  readonly teamsUserId: string;
  readonly aadObjectId?: string | undefined;
  /** `Action.Execute`'s verb; undefined for `Action.Submit` (its data's `verb`, else `submit`). */
  readonly verb?: string | undefined;
  /** The action's `data` with the user's inputs merged in. */
  readonly data: unknown;
}

/** Why a click is not taken (answered with an error, logged, nothing recorded). */
export type ClickRefusal =
  | "no-reference"
  | "bad-reference"
  | "other-tenant"
  | "unknown"
  | "forged"
  | "other-user"
  | "not-available"
  | "unknown-verb"
  | "too-large";

export type ClickOutcome =
  | {
      readonly kind: "recorded";
      readonly verb: string;
      /** The request's answer to the verb; undefined: Herald's acknowledgement. */
      readonly response: ActionResponse | undefined;
      readonly reference: CardReference;
      /** False when this click (recipient and verb) was recorded before: a redelivery. */
      readonly first: boolean;
      readonly row: Delivery;
    }
  | { readonly kind: "refused"; readonly reason: ClickRefusal };

export interface CardClickDependencies {
  readonly requests: Pick<NotificationRequestStore, "get">;
  readonly ledger: Pick<DeliveryLedger, "get" | "update">;
  readonly outbox: EventOutbox;
  /** The internal work queue: the clicked copy's replacement goes there (answered-copy.ts). */
  readonly queue: () => QueuePort;
  readonly clock: () => Date;
}

/** Clicks recorded per recipient (each verb once): a card has a handful of buttons. */
export const MAX_ACTIONS_PER_RECIPIENT = 8;

/** The user's inputs a click may carry, as JSON (they go into the row's event). */
export const MAX_INPUT_CHARS = 2_000;

const WRITE_ROUNDS = 5;

function refused(reason: ClickRefusal): ClickOutcome {
  return { kind: "refused", reason };
}

function verbOf(click: CardClick, inputs: Record<string, unknown>): string | undefined {
  const verb = click.type === "Action.Execute" ? click.verb : (inputs.verb ?? "submit");
  return typeof verb === "string" && verb.length > 0 && verb.length <= MAX_VERB_LENGTH
    ? verb
    : undefined;
}

/**
 * A click on a card Herald sent: checked against the reference Herald stamped on the button and
 * the recipient's delivery row (two point reads), recorded once per recipient and verb with its
 * `herald.card.action` in one conditional write, and published. No call to Teams, Graph or the
 * LOB: the answer goes back at once.
 */
export class CardClicks {
  constructor(private readonly deps: CardClickDependencies) {}

  async take(click: CardClick, log: Logger): Promise<ClickOutcome> {
    const { reference: raw, inputs } = splitClickData(click.data);
    if (raw === undefined) return refused("no-reference");
    const parsed = cardReferenceSchema.safeParse(raw);
    if (!parsed.success) return refused("bad-reference");
    const reference = parsed.data;
    if (reference.t !== click.tenantId) return refused("other-tenant");
    const verb = verbOf(click, inputs);
    if (verb === undefined) return refused("unknown-verb");
    if (JSON.stringify(inputs).length > MAX_INPUT_CHARS) return refused("too-large");

    const key = { tenantId: reference.t, id: reference.r };
    const [request, found] = await Promise.all([
      this.deps.requests.get(key),
      this.deps.ledger.get(key, reference.k),
    ]);
    if (request === undefined || found === undefined) return refused("unknown");
    if (!sameToken(found.cardToken, reference.s)) return refused("forged");
    if (!sameClicker(found, click)) return refused("other-user");
    if (!available(request, found)) return refused("not-available");
    if (request.actions !== undefined && !Object.hasOwn(request.actions, verb))
      return refused("unknown-verb");
    const response = request.actions?.[verb];

    let row: Delivery | undefined = found;
    for (let round = 0; round < WRITE_ROUNDS && row !== undefined; round++) {
      const current: Delivery = row;
      if (current.actions?.some((a) => a.verb === verb) === true) {
        // Teams redelivered the click (or the user pressed again before the copy changed).
        await this.deps.outbox.publish(current, actionEvents(current, verb));
        await this.replace(current, request);
        return { kind: "recorded", verb, response, reference, first: false, row: current };
      }
      if (!available(request, current)) return refused("not-available");
      if ((current.actions?.length ?? 0) >= MAX_ACTIONS_PER_RECIPIENT) return refused("too-large");
      const at = this.deps.clock();
      const action: RecordedAction = { verb, type: click.type, at: at.toISOString() };
      const fresh = this.deps.outbox.record(() => [
        cardActionEvent(
          current,
          { ...action, inputs, revision: reference.v },
          { at, correlationId: request.correlationId },
        ),
      ]);
      const written = await this.deps.ledger.update(current, {
        actions: [...(current.actions ?? []), action],
        answer: verb,
        events: withEvents(current.events, fresh),
      });
      if (written.kind === "written") {
        await this.deps.outbox.publish(written.row, fresh);
        await this.replace(written.row, request);
        metric(log, "cards.actions");
        return { kind: "recorded", verb, response, reference, first: true, row: written.row };
      }
      row = await this.deps.ledger.get(key, reference.k);
    }
    // Five writers in a row changed the row: Teams retries a click it got no answer to.
    throw new Error("the recipient's row kept changing while the click was recorded");
  }

  /**
   * Queues the clicked copy's replacement in the tenant's session (a Teams call: never made on
   * the way to the answer). Queued again on each redelivery while it is not in the chat yet: the
   * message id is the click's, so the broker keeps one; a click whose queueing failed was not
   * answered, and Teams delivers it again.
   */
  private async replace(row: Delivery, request: StoredRequest): Promise<void> {
    if (answerPending(row))
      await this.deps.queue().enqueue([answerMessage(row, request.correlationId)]);
  }
}

/** The clicking user is the one the copy went to (Teams id; AAD id when Teams' ids differ). */
function sameClicker(row: Delivery, click: CardClick): boolean {
  if (row.teamsUserId !== undefined && row.teamsUserId === click.teamsUserId) return true;
  return (
    row.aadObjectId !== undefined &&
    click.aadObjectId !== undefined &&
    row.aadObjectId.toLowerCase() === click.aadObjectId.toLowerCase()
  );
}

/** Only a copy in the chat can be clicked: not one of a recalled request, nor one never sent. */
function available(request: StoredRequest, row: Delivery): boolean {
  return request.recalledAt === undefined && row.state === "sent";
}

function actionEvents(row: Delivery, verb: string): CloudEvent[] {
  return (row.events ?? []).filter(
    (e) =>
      e.type === "herald.card.action" && (e.data as { verb?: unknown } | undefined)?.verb === verb,
  );
}
