import { type EventDefinition, Headers } from "@eventlane/core";
import type { DeadLetterReason } from "./dead-letter-reason.ts";

/** Which header gives a message its per-key position. */
export type PositionKind = "aggregate_version" | "key_sequence";

/** The Eventlane headers of a message, parsed. */
export interface MessageEnvelope {
  readonly key: string | null;
  readonly headers: Readonly<Record<string, string>>;
  readonly eventId: string | null;
  readonly eventType: string | null;
  readonly schemaVersion: number | null;
  readonly aggregateType: string | null;
  readonly aggregateId: string | null;
  /** The key sequence (plain `enqueue`) or, without one, the aggregate version (event-sourced); null when neither. */
  readonly position: number | null;
  readonly positionKind: PositionKind | null;
}

export type DecodeResult =
  | { readonly ok: true; readonly definition: EventDefinition; readonly data: unknown }
  | { readonly ok: false; readonly reason: DeadLetterReason; readonly detail: string };

const POSITIVE_INT = /^[1-9][0-9]{0,15}$/;

function positiveInt(value: string | undefined): number | null | "invalid" {
  if (value === undefined) return null;
  return POSITIVE_INT.test(value) ? Number(value) : "invalid";
}

/** What the envelope is read from: a record's key and its headers as UTF-8 strings. */
export interface EnvelopeSource {
  readonly key: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
}

/** Reads the envelope; `invalid` names a malformed position header. */
export function readEnvelope(message: EnvelopeSource): { envelope: MessageEnvelope; invalid: string | null } {
  const headers = message.headers;
  const sequence = positiveInt(headers[Headers.keySequence]);
  const version = positiveInt(headers[Headers.aggregateVersion]);
  const schemaVersion = positiveInt(headers[Headers.schemaVersion]);
  let invalid: string | null = null;
  if (sequence === "invalid") invalid = `header ${Headers.keySequence} is not a positive integer`;
  else if (version === "invalid") invalid = `header ${Headers.aggregateVersion} is not a positive integer`;
  else if (schemaVersion === "invalid") invalid = `header ${Headers.schemaVersion} is not a positive integer`;
  const position = typeof sequence === "number" ? sequence : typeof version === "number" ? version : null;
  const positionKind: PositionKind | null =
    typeof sequence === "number" ? "key_sequence" : typeof version === "number" ? "aggregate_version" : null;
  const aggregateId = headers[Headers.aggregateId] ?? null;
  return {
    invalid,
    envelope: {
      key: message.key === null ? aggregateId : message.key.toString("utf8"),
      headers,
      eventId: headers[Headers.eventId] ?? null,
      eventType: headers[Headers.eventType] ?? null,
      schemaVersion: typeof schemaVersion === "number" ? schemaVersion : null,
      aggregateType: headers[Headers.aggregateType] ?? null,
      aggregateId,
      position,
      positionKind,
    },
  };
}

/**
 * Finds the message's definition by its type header and decodes its value with the definition
 * (upcasting from the schema-version header). Never throws: a message that cannot be decoded gives
 * the dead-letter reason.
 */
export function decodeMessage(
  envelope: MessageEnvelope,
  invalidHeader: string | null,
  value: Buffer | null,
  definitions: ReadonlyMap<string, EventDefinition>,
): DecodeResult {
  if (invalidHeader !== null) return { ok: false, reason: "invalid_headers", detail: invalidHeader };
  const missing = [
    envelope.eventId === null ? Headers.eventId : null,
    envelope.eventType === null ? Headers.eventType : null,
    envelope.schemaVersion === null ? Headers.schemaVersion : null,
  ].filter((h) => h !== null);
  if (missing.length > 0) {
    return { ok: false, reason: "invalid_headers", detail: `missing header(s): ${missing.join(", ")}` };
  }
  if (envelope.key === null) {
    return { ok: false, reason: "invalid_headers", detail: "the message has no key and no aggregate-id header" };
  }
  const definition = definitions.get(envelope.eventType as string);
  if (definition === undefined) {
    return {
      ok: false,
      reason: "unknown_event_type",
      detail: `no definition for event type ${JSON.stringify(envelope.eventType)}; known: ${[...definitions.keys()].join(", ")}`,
    };
  }
  if (value === null || value.length === 0)
    return { ok: false, reason: "invalid_json", detail: "the message has no value" };
  let payload: unknown;
  try {
    payload = JSON.parse(value.toString("utf8"));
  } catch (error) {
    return { ok: false, reason: "invalid_json", detail: error instanceof Error ? error.message : String(error) };
  }
  try {
    return { ok: true, definition, data: definition.decode(payload, envelope.schemaVersion as number) };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const detail = error instanceof Error ? error.message : String(error);
    if (code === "EVENTLANE_UPCAST_MISSING") return { ok: false, reason: "upcast_missing", detail };
    return { ok: false, reason: "invalid_payload", detail };
  }
}
