/**
 * Kafka header names on every message the relay publishes (DESIGN invariant 6), so consumers can
 * deduplicate (event id), decode (type and schema version) and detect gaps (aggregate version for
 * event-sourced streams, key sequence for plain `enqueue`). Values are UTF-8 strings.
 */
export const Headers = {
  eventId: "eventlane-event-id",
  eventType: "eventlane-event-type",
  schemaVersion: "eventlane-schema-version",
  aggregateType: "eventlane-aggregate-type",
  aggregateId: "eventlane-aggregate-id",
  aggregateVersion: "eventlane-aggregate-version",
  keySequence: "eventlane-key-sequence",
  correlationId: "eventlane-correlation-id",
  causationId: "eventlane-causation-id",
  /** W3C trace context, passed through as is. */
  traceparent: "traceparent",
  tracestate: "tracestate",
} as const;

export type HeaderName = (typeof Headers)[keyof typeof Headers];

/** Metadata a writer attaches to an event; it travels as headers (and is stored with the event). */
export interface EventMetadata {
  readonly correlationId?: string;
  readonly causationId?: string;
  readonly traceparent?: string;
  readonly tracestate?: string;
  /** Extra string headers, passed through to Kafka as they are. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The `outbox.headers` column: metadata as a flat map of final Kafka header names. */
export function metadataToHeaders(metadata: EventMetadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (metadata === undefined) return out;
  if (metadata.headers !== undefined) Object.assign(out, metadata.headers);
  if (metadata.correlationId !== undefined) out[Headers.correlationId] = metadata.correlationId;
  if (metadata.causationId !== undefined) out[Headers.causationId] = metadata.causationId;
  if (metadata.traceparent !== undefined) out[Headers.traceparent] = metadata.traceparent;
  if (metadata.tracestate !== undefined) out[Headers.tracestate] = metadata.tracestate;
  return out;
}
