import type { z } from "zod";

import type { Logger } from "../logging";
import type { DeliveryLedger } from "../store/delivery-ledger";
import type { NotificationRequestStore } from "../store/notification-requests";
import { RecipientOverrideStore } from "../store/recipient-overrides";
import type { TableFactory } from "../store/table-factory";
import type { UserReferenceStore } from "../store/user-references";
import { copyWorkSchema, revisionWorkSchema } from "./change-work-items";
import { type CopyChangeDependencies, CopyChanges } from "./copy-changes";
import type { WorkHandler } from "./queue-handler";
import { RecipientUpdates } from "./recipient-updates";
import { RevisionPasses } from "./revision-pass";
import { NotificationRevisions } from "./revisions";
import type { QueueMessageInfo, WorkKind } from "./work-items";

/** The work kinds updates and recalls add. */
export type ChangeKind = "revision" | "copy";

export interface RevisionServicesDependencies extends Omit<CopyChangeDependencies, "overrides"> {
  readonly requests: NotificationRequestStore;
  readonly ledger: DeliveryLedger;
  readonly users: CopyChangeDependencies["users"] &
    Pick<UserReferenceStore, "findByAadObjectId" | "findByUserPrincipalName">;
  /** Where per-recipient updates are kept (beside the requests). */
  readonly tables: TableFactory;
  /** The work items' parse (services.ts): a malformed one is logged and dropped. */
  readonly parse: <T>(
    schema: z.ZodType<T>,
    kind: WorkKind,
    body: unknown,
    log: Logger,
  ) => T | undefined;
}

/**
 * Updates and recalls wired together (part of the notification pipeline's composition root):
 * their acceptance (of a whole request, and of one person's copy), and the `revision` and
 * `copy` work items' handlers.
 */
export function createRevisionServices(deps: RevisionServicesDependencies): {
  readonly revisions: NotificationRevisions;
  readonly recipientUpdates: RecipientUpdates;
  readonly handlers: { readonly revision: WorkHandler; readonly copy: WorkHandler };
} {
  const overrides = new RecipientOverrideStore(deps.tables);
  const revisions = new NotificationRevisions({
    requests: deps.requests,
    work: deps.queue,
    clock: deps.clock,
  });
  const passes = new RevisionPasses(deps);
  const copies = new CopyChanges({ ...deps, overrides });
  const scoped = (log: Logger, work: { requestId: string; correlationId?: string | undefined }) =>
    log.with({ requestId: work.requestId, correlationId: work.correlationId });
  return {
    revisions,
    recipientUpdates: new RecipientUpdates({ ...deps, overrides }),
    handlers: {
      revision: async (body: unknown, _info: QueueMessageInfo, log: Logger) => {
        const work = deps.parse(revisionWorkSchema, "revision", body, log);
        return work === undefined ? undefined : passes.run(work, scoped(log, work));
      },
      copy: async (body: unknown, info: QueueMessageInfo, log: Logger) => {
        const work = deps.parse(copyWorkSchema, "copy", body, log);
        return work === undefined ? undefined : copies.change(work, info, scoped(log, work));
      },
    },
  };
}
