import { PayloadTooLargeError, SerializationError } from "../errors.ts";
import type { EventDefinition } from "../event/define-event.ts";

/** Validates and encodes `data` with its definition, then serialises it to JSON within `limit` bytes. */
export function serializePayload(def: EventDefinition, data: unknown, limit: number): string {
  const encoded = def.encode(data);
  let json: string | undefined;
  try {
    json = JSON.stringify(encoded);
  } catch (cause) {
    throw new SerializationError({
      eventType: def.type,
      message: `event "${def.type}": payload cannot be serialised to JSON (${cause instanceof Error ? cause.message : String(cause)}); use JSON-safe types (strings for bigints and dates)`,
    });
  }
  if (json === undefined) {
    throw new SerializationError({
      eventType: def.type,
      message: `event "${def.type}": payload serialises to nothing (undefined or a function)`,
    });
  }
  const bytes = Buffer.byteLength(json, "utf8");
  if (bytes > limit) {
    throw new PayloadTooLargeError({
      eventType: def.type,
      bytes,
      limit,
      message: `event "${def.type}": payload is ${bytes} bytes, over maxPayloadBytes (${limit}); store large data elsewhere and send a reference`,
    });
  }
  return json;
}

/** Serialises headers (string values only). */
export function serializeHeaders(eventType: string, headers: Record<string, string>): string {
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== "string") {
      throw new SerializationError({
        eventType,
        message: `event "${eventType}": header "${k}" must be a string; got ${typeof v}`,
      });
    }
  }
  return JSON.stringify(headers);
}
