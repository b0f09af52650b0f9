/** A delivery row's states (delivery-ledger.ts describes how a row moves between them). */
export type DeliveryState =
  | "pending"
  | "installing"
  | "waiting-for-chat"
  | "sending"
  | "sent"
  | "unreachable"
  | "failed"
  | "rejected"
  | "duplicate"
  /** Never sent: the request was recalled first. */
  | "cancelled"
  /** Sent, then deleted from the chat when the request was recalled. */
  | "recalled";

/** The states a row never leaves by a delivery (an update or recall may still move a `sent` one). */
export const FINAL_DELIVERY_STATES = [
  "sent",
  "unreachable",
  "failed",
  "rejected",
  "duplicate",
  "cancelled",
  "recalled",
] as const satisfies readonly DeliveryState[];

export const FINAL_STATES: ReadonlySet<DeliveryState> = new Set(FINAL_DELIVERY_STATES);
