import { Headers } from "@eventlane/core";
import type { OutboxRow } from "../outbox-reader/outbox-row.ts";
import type { OutboundMessage } from "./producer-port.ts";

/** A row that cannot be published as it is: counts toward its attempts. */
export interface RecordProblem {
  readonly reason: string;
}

/**
 * Builds the Kafka record of an outbox row: key = the event's key, value = the JSON payload, and the
 * headers of DESIGN invariant 6 (event id, type, schema version, aggregate type/id/version or the
 * per-key sequence, and the writer's metadata headers such as traceparent).
 */
export function toOutboundMessage(row: OutboxRow): OutboundMessage | RecordProblem {
  if (row.payload === null) {
    return { reason: `invalid-record: no payload (event ${row.eventId} has no events row)` };
  }
  const headers: Record<string, string> = {};
  if (row.headers !== null && row.headers !== undefined) {
    if (typeof row.headers !== "object" || Array.isArray(row.headers)) {
      return { reason: "invalid-record: the headers column is not a JSON object" };
    }
    for (const [k, v] of Object.entries(row.headers as Record<string, unknown>)) {
      if (typeof v !== "string") return { reason: `invalid-record: header "${k}" is not a string` };
      headers[k] = v;
    }
  }
  headers[Headers.eventId] = row.eventId;
  headers[Headers.eventType] = row.eventType;
  headers[Headers.schemaVersion] = String(row.schemaVersion);
  if (row.aggregateType !== null) headers[Headers.aggregateType] = row.aggregateType;
  if (row.aggregateId !== null) headers[Headers.aggregateId] = row.aggregateId;
  if (row.aggregateVersion !== null) headers[Headers.aggregateVersion] = String(row.aggregateVersion);
  if (row.keySequence !== null) headers[Headers.keySequence] = row.keySequence;
  return { key: row.key, value: row.payload, headers };
}

export function isRecordProblem(m: OutboundMessage | RecordProblem): m is RecordProblem {
  return "reason" in m;
}

/** Record batch header of the v2 format: base offset .. records count. */
export const RECORD_BATCH_OVERHEAD = 61;
/** Per record: length, attributes, timestamp and offset deltas, key/value lengths, header count (varints, worst case). */
const RECORD_OVERHEAD = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/** Per header: key and value length varints (worst case). */
const HEADER_OVERHEAD = 10;

/**
 * Upper bound of a record's size on the wire (uncompressed), headers included. Counts UTF-8 bytes
 * without encoding (this runs once per record on the hot path).
 */
export function estimateRecordBytes(m: OutboundMessage): number {
  let bytes =
    RECORD_OVERHEAD + Buffer.byteLength(m.key, "utf8") + (m.value === null ? 0 : Buffer.byteLength(m.value, "utf8"));
  for (const k in m.headers)
    bytes += HEADER_OVERHEAD + Buffer.byteLength(k, "utf8") + Buffer.byteLength(m.headers[k]!, "utf8");
  return bytes;
}

/** Size of a record batch holding only `m`: what the topic's `max.message.bytes` limits. */
export function estimateSingleRecordBatchBytes(m: OutboundMessage): number {
  return RECORD_BATCH_OVERHEAD + estimateRecordBytes(m);
}

/**
 * Splits messages into sends whose record batches stay under `maxBatchBytes` even if every message
 * lands on one partition (kafkajs puts all records of a partition in one batch). Order is kept.
 * `bytes`, when given, is the item's {@link estimateRecordBytes}, computed once by the caller.
 */
export function chunkBySize<T extends { readonly message: OutboundMessage; readonly bytes?: number }>(
  items: readonly T[],
  maxBatchBytes: number,
): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = RECORD_BATCH_OVERHEAD;
  for (const item of items) {
    const size = item.bytes ?? estimateRecordBytes(item.message);
    if (current.length > 0 && bytes + size > maxBatchBytes) {
      chunks.push(current);
      current = [];
      bytes = RECORD_BATCH_OVERHEAD;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
