import type { TableNames } from "@eventlane/core";
import { shardOf } from "@eventlane/core/internal";
import { type Kysely, sql } from "kysely";

/*
 * All of the CLI's SQL but the dead letters' (the relay's `outboxDeadLetters` and the consumer's
 * `consumerDeadLetters` own theirs), each statement with the reason for its shape. The CLI is an
 * operator's tool: the statements favour one round trip and plain sequential scans of the outbox
 * (small, thanks to retention) over indexes the hot path does not need.
 */

/** The replay marker header: `eventlane-replay: <replay id>` on every record a replay publishes. */
export const REPLAY_HEADER = "eventlane-replay";

// biome-ignore lint/suspicious/noExplicitAny: the CLI runs only its own SQL over Eventlane's tables
type Db = Kysely<any>;

/** The version in a `schema_info` table, or null when the table does not exist (to_regclass, no error). */
export async function readSchemaVersion(db: Db, schemaInfoTable: string): Promise<number | null> {
  const exists = await sql<{ t: string | null }>`SELECT to_regclass(${schemaInfoTable})::text AS t`.execute(db);
  if (exists.rows[0]?.t == null) return null;
  const r = await sql<{ version: number }>`SELECT version FROM ${sql.raw(schemaInfoTable)}`.execute(db);
  return r.rows[0]?.version ?? null;
}

export interface ShardRow {
  shard: number;
  shard_count: number;
  /** relay_config holds a count (a relay has started on this database). */
  recorded: boolean;
  owner: string | null;
  epoch: string | null;
  acquired_at: Date | null;
  heartbeat_age_seconds: number | null;
  lock_held: boolean;
  pending_rows: string;
  lag_seconds: number;
  now: Date;
}

/**
 * One row per shard from 0 to shard_count - 1 (a shard nobody leads shows too): its row in
 * relay_shards, whether its advisory lock `(namespace, shard)` is held right now (pg_locks: the
 * lock, not the row, decides who leads), and its pending rows and lag counted by the relay's own
 * shard expression. Times come from the database clock.
 */
export async function readShards(db: Db, n: TableNames, namespace: number): Promise<ShardRow[]> {
  const r = await sql<ShardRow>`
WITH cfg AS (
  SELECT (SELECT shard_count FROM ${sql.raw(n.relayConfig)} LIMIT 1) AS recorded
), all_shards AS (
  SELECT generate_series(0, COALESCE(cfg.recorded, 1) - 1) AS shard, COALESCE(cfg.recorded, 1) AS shard_count,
         cfg.recorded IS NOT NULL AS recorded
    FROM cfg
), pending AS (
  SELECT ${shardOf("o.key_hash", sql.ref("c.shard_count"))} AS shard, count(*) AS pending_rows, min(o.created_at) AS oldest
    FROM ${sql.raw(n.outbox)} o CROSS JOIN (SELECT COALESCE(recorded, 1) AS shard_count FROM cfg) c
   WHERE o.status = 'pending'
   GROUP BY 1
)
SELECT s.shard::int AS shard, s.shard_count::int AS shard_count, s.recorded,
       rs.owner, rs.epoch::text AS epoch, rs.acquired_at,
       CASE WHEN rs.heartbeat_at IS NULL THEN NULL
            ELSE GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - rs.heartbeat_at), 0)::float8 END AS heartbeat_age_seconds,
       EXISTS (
         SELECT 1 FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid::bigint = ${namespace} AND l.objid::bigint = s.shard) AS lock_held,
       COALESCE(p.pending_rows, 0)::text AS pending_rows,
       COALESCE(GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - p.oldest), 0), 0)::float8 AS lag_seconds,
       clock_timestamp() AS now
  FROM all_shards s
  LEFT JOIN pending p ON p.shard = s.shard
  LEFT JOIN ${sql.raw(n.relayShards)} rs ON rs.shard = s.shard
 ORDER BY s.shard`.execute(db);
  return r.rows;
}

export interface ParkedKeyRow {
  topic: string;
  key: string;
  outbox_id: string;
  reason: string;
  parked_at: Date;
  waiting_rows: string;
  total: string;
}

/** Parked keys, longest parked first, with the pending rows that wait behind each and the total count. */
export async function readParkedKeys(db: Db, n: TableNames, limit: number): Promise<ParkedKeyRow[]> {
  const r = await sql<ParkedKeyRow>`
SELECT p.topic, p.key, p.outbox_id::text AS outbox_id, p.reason, p.parked_at,
       (SELECT count(*) FROM ${sql.raw(n.outbox)} w
         WHERE w.status = 'pending' AND w.topic = p.topic AND w.key = p.key)::text AS waiting_rows,
       count(*) OVER ()::text AS total
  FROM ${sql.raw(n.parkedKeys)} p
 ORDER BY p.parked_at, p.topic, p.key
 LIMIT ${limit}`.execute(db);
  return r.rows;
}

export interface DeadLetterGroupRow {
  topic: string;
  reason: string | null;
  count: string;
  oldest: Date;
}

/** Dead letters by topic and reason class (the text of last_error before its first ":"). */
export async function readDeadLetterGroups(db: Db, n: TableNames): Promise<DeadLetterGroupRow[]> {
  // The partial index on dead-lettered rows serves this scan.
  const r = await sql<DeadLetterGroupRow>`
SELECT topic, trim(split_part(last_error, ':', 1)) AS reason, count(*)::text AS count, min(created_at) AS oldest
  FROM ${sql.raw(n.outbox)}
 WHERE status = 'dead_lettered'
 GROUP BY 1, 2
 ORDER BY count(*) DESC, 1, 2`.execute(db);
  return r.rows;
}

/** What a replay selects: every field narrows; `stream`, `key` or a range is required by the command. */
export interface ReplaySelection {
  readonly stream?: string;
  readonly key?: string;
  /** The original topic. */
  readonly topic?: string;
  readonly fromId?: string;
  readonly toId?: string;
  readonly since?: Date;
  readonly until?: Date;
}

export interface OutboxCandidateRow {
  id: string;
  event_id: string;
  topic: string;
  key: string;
  key_hash: number;
  event_type: string;
  schema_version: number;
  aggregate_type: string | null;
  aggregate_id: string | null;
  aggregate_version: number | null;
  key_sequence: string | null;
  payload: string | null;
  headers: Record<string, unknown> | null;
  status: string;
  created_at: Date;
}

/**
 * Original outbox rows (not replays) the selection takes, in id order: both enqueued rows (payload
 * in the row) and event-sourced ones (payload NULL, read by the relay from the events row with the
 * same event_id). Every status is returned; the command decides what it may replay.
 */
export async function readReplayOutboxRows(
  db: Db,
  n: TableNames,
  s: ReplaySelection,
  limit: number,
): Promise<OutboxCandidateRow[]> {
  const r = await sql<OutboxCandidateRow>`
SELECT o.id::text AS id, o.event_id::text AS event_id, o.topic, o.key, o.key_hash, o.event_type, o.schema_version,
       o.aggregate_type, o.aggregate_id, o.aggregate_version, o.key_sequence::text AS key_sequence,
       o.payload::text AS payload, o.headers, o.status, o.created_at
  FROM ${sql.raw(n.outbox)} o
 WHERE NOT (o.headers ? ${REPLAY_HEADER})
   AND (${s.stream ?? null}::text IS NULL OR (o.payload IS NULL AND o.aggregate_id = ${s.stream ?? null}))
   AND (${s.key ?? null}::text IS NULL OR o.key = ${s.key ?? null})
   AND (${s.topic ?? null}::text IS NULL OR o.topic = ${s.topic ?? null})
   AND (${s.fromId ?? null}::bigint IS NULL OR o.id >= ${s.fromId ?? null}::bigint)
   AND (${s.toId ?? null}::bigint IS NULL OR o.id <= ${s.toId ?? null}::bigint)
   AND (${s.since ?? null}::timestamptz IS NULL OR o.created_at >= ${s.since ?? null})
   AND (${s.until ?? null}::timestamptz IS NULL OR o.created_at < ${s.until ?? null})
 ORDER BY o.id
 LIMIT ${limit}`.execute(db);
  return r.rows;
}

export interface EventCandidateRow {
  event_id: string;
  stream_id: string;
  stream_type: string;
  version: number;
  event_type: string;
  schema_version: number;
  headers: Record<string, unknown> | null;
  created_at: Date;
}

/**
 * Events of event-sourced streams that have no original outbox row any more (retention removed it,
 * or the relay deletes published rows): the events table keeps them, but not their topic. Only a
 * stream, key (= stream id) or time selection can take them; ordered by stream and version.
 */
export async function readReplayEventsWithoutOutbox(
  db: Db,
  n: TableNames,
  s: ReplaySelection,
  limit: number,
): Promise<EventCandidateRow[]> {
  const stream = s.stream ?? s.key ?? null;
  if (s.stream !== undefined && s.key !== undefined && s.stream !== s.key) return [];
  const r = await sql<EventCandidateRow>`
SELECT e.event_id::text AS event_id, e.stream_id, st.stream_type, e.version, e.event_type, e.schema_version,
       e.metadata AS headers, e.created_at
  FROM ${sql.raw(n.events)} e
  JOIN ${sql.raw(n.streams)} st ON st.stream_id = e.stream_id
 WHERE (${stream}::text IS NULL OR e.stream_id = ${stream})
   AND (${s.since ?? null}::timestamptz IS NULL OR e.created_at >= ${s.since ?? null})
   AND (${s.until ?? null}::timestamptz IS NULL OR e.created_at < ${s.until ?? null})
   AND NOT EXISTS (
     SELECT 1 FROM ${sql.raw(n.outbox)} o WHERE o.event_id = e.event_id AND NOT (o.headers ? ${REPLAY_HEADER}))
 ORDER BY e.stream_id, e.version
 LIMIT ${limit}`.execute(db);
  return r.rows;
}

export interface KeySequenceGapRow {
  topic: string;
  last_sequence: string;
  first_in_outbox: string | null;
}

/**
 * For a key's enqueued events: the key's last sequence per topic and the lowest sequence still in
 * the outbox. Sequences below that one are gone with their rows and cannot be replayed.
 */
export async function readKeySequenceGaps(
  db: Db,
  n: TableNames,
  key: string,
  topic: string | undefined,
): Promise<KeySequenceGapRow[]> {
  const r = await sql<KeySequenceGapRow>`
SELECT k.topic, k.last_sequence::text AS last_sequence,
       (SELECT min(o.key_sequence) FROM ${sql.raw(n.outbox)} o
         WHERE o.topic = k.topic AND o.key = k.key AND o.key_sequence IS NOT NULL
           AND NOT (o.headers ? ${REPLAY_HEADER}))::text AS first_in_outbox
  FROM ${sql.raw(n.keySequences)} k
 WHERE k.key = ${key} AND (${topic ?? null}::text IS NULL OR k.topic = ${topic ?? null})
 ORDER BY k.topic`.execute(db);
  return r.rows;
}

/** The oldest row the outbox still holds (id and time), or nulls when it is empty. */
export async function readOutboxStart(db: Db, n: TableNames): Promise<{ id: string | null; created_at: Date | null }> {
  const r = await sql<{ id: string | null; created_at: Date | null }>`
SELECT o.id::text AS id, o.created_at FROM ${sql.raw(n.outbox)} o ORDER BY o.id LIMIT 1`.execute(db);
  return r.rows[0] ?? { id: null, created_at: null };
}

/** Which (topic, key) pairs among these are parked (a replay to them waits behind the dead letter). */
export async function readParkedAmong(
  db: Db,
  n: TableNames,
  pairs: readonly { topic: string; key: string }[],
): Promise<{ topic: string; key: string }[]> {
  if (pairs.length === 0) return [];
  const r = await sql<{ topic: string; key: string }>`
SELECT p.topic, p.key FROM ${sql.raw(n.parkedKeys)} p
  JOIN unnest(${pairs.map((p) => p.topic)}::text[], ${pairs.map((p) => p.key)}::text[]) AS u(topic, key)
    ON u.topic = p.topic AND u.key = p.key`.execute(db);
  return r.rows;
}

/** One outbox row a replay writes. */
export interface ReplayRow {
  readonly eventId: string;
  readonly topic: string;
  readonly key: string;
  readonly keyHash: number;
  readonly eventType: string;
  readonly schemaVersion: number;
  readonly aggregateType: string | null;
  readonly aggregateId: string | null;
  readonly aggregateVersion: number | null;
  readonly keySequence: string | null;
  readonly payload: string | null;
  readonly headers: Readonly<Record<string, unknown>>;
}

/**
 * Writes a replay's outbox rows in one transaction, in the given order (ids follow it, so the
 * relay publishes each key's rows in that order), and wakes the relays with one NOTIFY. The rows
 * keep the event id and position columns of the original and touch no key sequence: consumers see
 * the original headers plus the replay marker. Returns the new outbox ids, in order.
 */
export async function insertReplayRows(db: Db, n: TableNames, rows: readonly ReplayRow[]): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    const r = await sql<{ id: string }>`
INSERT INTO ${sql.raw(n.outbox)}
  (event_id, topic, key, key_hash, event_type, schema_version, aggregate_type, aggregate_id, aggregate_version,
   key_sequence, payload, headers)
SELECT u.event_id, u.topic, u.key, u.key_hash, u.event_type, u.schema_version, u.aggregate_type, u.aggregate_id,
       u.aggregate_version, u.key_sequence, u.payload, u.headers
  FROM unnest(${rows.map((x) => x.eventId)}::uuid[], ${rows.map((x) => x.topic)}::text[], ${rows.map((x) => x.key)}::text[],
              ${rows.map((x) => x.keyHash)}::integer[], ${rows.map((x) => x.eventType)}::text[],
              ${rows.map((x) => x.schemaVersion)}::integer[], ${rows.map((x) => x.aggregateType)}::text[],
              ${rows.map((x) => x.aggregateId)}::text[], ${rows.map((x) => x.aggregateVersion)}::integer[],
              ${rows.map((x) => x.keySequence)}::bigint[], ${rows.map((x) => x.payload)}::json[],
              ${rows.map((x) => JSON.stringify(x.headers))}::jsonb[])
       WITH ORDINALITY AS u(event_id, topic, key, key_hash, event_type, schema_version, aggregate_type, aggregate_id,
                            aggregate_version, key_sequence, payload, headers, o)
 ORDER BY u.o
RETURNING id::text AS id`.execute(trx);
    await sql`SELECT pg_notify(${n.notifyChannel}, '')`.execute(trx);
    return r.rows.map((x) => x.id);
  });
}

/** The database's clock: verify's cut-off. */
export async function readDatabaseNow(db: Db): Promise<Date> {
  const r = await sql<{ now: Date }>`SELECT clock_timestamp() AS now`.execute(db);
  return r.rows[0]!.now;
}

/**
 * The event types the outbox routes to `topic` (its original rows, any status) and, for each, how
 * many topics the outbox has it on: a type on one topic only can be attributed to it when its
 * outbox rows are gone.
 */
export async function readTopicEventTypes(
  db: Db,
  n: TableNames,
  topic: string,
): Promise<{ event_type: string; topics: number }[]> {
  const r = await sql<{ event_type: string; topics: number }>`
SELECT t.event_type, (SELECT count(DISTINCT o2.topic) FROM ${sql.raw(n.outbox)} o2
                       WHERE o2.event_type = t.event_type AND NOT (o2.headers ? ${REPLAY_HEADER}))::int AS topics
  FROM (SELECT DISTINCT o.event_type FROM ${sql.raw(n.outbox)} o
         WHERE o.topic = ${topic} AND NOT (o.headers ? ${REPLAY_HEADER})) t
 ORDER BY 1`.execute(db);
  return r.rows;
}

export interface PublishedEventRow {
  event_id: string;
  stream_id: string;
  version: number;
  event_type: string;
  created_at: Date;
}

/**
 * Events of the given types created before the cut-off whose original outbox rows are gone: they
 * were processed (published, or skipped) before this moment, since rows are removed only then.
 * Read before the topic's end offsets, so every one of them was sent before those offsets.
 */
export async function readEventsWithoutOutbox(
  db: Db,
  n: TableNames,
  types: readonly string[],
  cutoff: Date,
  since: Date | undefined,
): Promise<PublishedEventRow[]> {
  if (types.length === 0) return [];
  const r = await sql<PublishedEventRow>`
SELECT e.event_id::text AS event_id, e.stream_id, e.version, e.event_type, e.created_at
  FROM ${sql.raw(n.events)} e
 WHERE e.event_type = ANY(${[...types]}::text[]) AND e.created_at <= ${cutoff}
   AND (${since ?? null}::timestamptz IS NULL OR e.created_at >= ${since ?? null})
   AND NOT EXISTS (
     SELECT 1 FROM ${sql.raw(n.outbox)} o WHERE o.event_id = e.event_id AND NOT (o.headers ? ${REPLAY_HEADER}))`.execute(
    db,
  );
  return r.rows;
}

export interface PublishedOutboxRow {
  id: string;
  event_id: string;
  key: string;
  key_hash: number;
  aggregate_version: number | null;
  key_sequence: string | null;
  replay_id: string | null;
  created_at: Date;
}

/**
 * Outbox rows of `topic` marked published at or before the cut-off. The relay marks a row only
 * after Kafka acknowledged it (after the transaction committed, in transactional mode), so each of
 * these was in the topic before the end offsets read after the cut-off.
 */
export async function readPublishedRows(
  db: Db,
  n: TableNames,
  topic: string,
  cutoff: Date,
  since: Date | undefined,
): Promise<PublishedOutboxRow[]> {
  const r = await sql<PublishedOutboxRow>`
SELECT o.id::text AS id, o.event_id::text AS event_id, o.key, o.key_hash, o.aggregate_version,
       o.key_sequence::text AS key_sequence, o.headers->>${REPLAY_HEADER} AS replay_id, o.created_at
  FROM ${sql.raw(n.outbox)} o
 WHERE o.topic = ${topic} AND o.status = 'published' AND o.published_at <= ${cutoff}
   AND (${since ?? null}::timestamptz IS NULL OR o.created_at >= ${since ?? null})`.execute(db);
  return r.rows;
}

/** Keys of `topic` with a skipped dead letter: an event of theirs that is gone may never have been sent. */
export async function readSkippedKeys(db: Db, n: TableNames, topic: string): Promise<Set<string>> {
  const r = await sql<{ key: string }>`
SELECT DISTINCT key FROM ${sql.raw(n.deadLetterLog)} WHERE topic = ${topic} AND action = 'skipped'`.execute(db);
  return new Set(r.rows.map((x) => x.key));
}
