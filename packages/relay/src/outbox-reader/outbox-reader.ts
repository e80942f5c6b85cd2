import type pg from "pg";
import type { OutboxRow } from "./outbox-row.ts";
import type { RelayStatements } from "./statements.ts";

interface RawRow {
  id: string;
  event_id: string;
  topic: string;
  key: string;
  event_type: string;
  schema_version: number;
  aggregate_type: string | null;
  aggregate_id: string | null;
  aggregate_version: number | null;
  key_sequence: string | null;
  payload: string | null;
  headers: unknown;
  attempts: number;
  created_at_ms: number;
}

/**
 * Reads up to `limit` pending rows of `shard` in id order, skipping parked keys and the ids in
 * `excludeIds` (the batch being sent while this one is read ahead). Memory is bounded by `limit`.
 */
export async function readPendingBatch(
  pool: pg.Pool,
  statements: RelayStatements,
  shard: number,
  shardCount: number,
  limit: number,
  excludeIds: readonly string[] = [],
): Promise<OutboxRow[]> {
  const result =
    shardCount === 1
      ? await pool.query<RawRow>({ ...statements.readBatchSingleShard, values: [limit, excludeIds] })
      : await pool.query<RawRow>({ ...statements.readBatch, values: [shardCount, shard, limit, excludeIds] });
  return result.rows.map((r) => ({
    id: r.id,
    eventId: r.event_id,
    topic: r.topic,
    key: r.key,
    eventType: r.event_type,
    schemaVersion: r.schema_version,
    aggregateType: r.aggregate_type,
    aggregateId: r.aggregate_id,
    aggregateVersion: r.aggregate_version,
    keySequence: r.key_sequence,
    payload: r.payload,
    headers: r.headers,
    attempts: r.attempts,
    createdAtMs: r.created_at_ms,
  }));
}
