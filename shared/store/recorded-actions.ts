/**
 * A recipient's clicks on the buttons of the card (notifications/card-clicks.ts), kept on the
 * delivery row as one JSON string property, `actionsJson`: each verb once, in order, at most a
 * handful (the clicks refuse more).
 */
export interface RecordedAction {
  readonly verb: string;
  readonly type: "Action.Execute" | "Action.Submit";
  readonly at: string;
}

export function actionsJson(actions: readonly RecordedAction[] | undefined): string | undefined {
  return actions === undefined || actions.length === 0 ? undefined : JSON.stringify(actions);
}

/** The stored clicks back; a value that is not an array (never written so) is none. */
export function parseActions(json: unknown): readonly RecordedAction[] | undefined {
  if (typeof json !== "string" || json === "") return undefined;
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? (parsed as RecordedAction[]) : undefined;
  } catch {
    return undefined;
  }
}
