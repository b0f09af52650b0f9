/**
 * A CloudEvents 1.0 event as Herald writes it: structured JSON mode, the whole event one JSON
 * object (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md,
 * https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md). The stores
 * keep events with the state change they report; nothing here does I/O.
 */
export interface CloudEvent {
  readonly specversion: "1.0";
  /** Unique per transition and stable across redeliveries: consumers de-duplicate by it. */
  readonly id: string;
  /** `/tenants/{tenantId}/notifications/{requestId}`. */
  readonly source: string;
  readonly type: string;
  /** The recipient (`<kind>:<value>`, as the status API keys it); absent on request events. */
  readonly subject?: string;
  /** When the transition was decided (RFC 3339). */
  readonly time: string;
  readonly datacontenttype: "application/json";
  /** The `$id` of the JSON Schema of `data` (published with Herald, one per type). */
  readonly dataschema?: string;
  /** The request's `correlationId` (a CloudEvents extension attribute: lower-case letters only). */
  readonly correlationid?: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/** The media type of one structured-mode CloudEvent in JSON. */
export const CLOUDEVENTS_JSON = "application/cloudevents+json";

/** Events of one row, as stored: parsed back leniently (a row Herald wrote holds only events). */
export function isCloudEvent(value: unknown): value is CloudEvent {
  if (typeof value !== "object" || value === null) return false;
  const e = value as Record<string, unknown>;
  return (
    e.specversion === "1.0" &&
    typeof e.id === "string" &&
    typeof e.type === "string" &&
    typeof e.source === "string" &&
    typeof e.time === "string"
  );
}
