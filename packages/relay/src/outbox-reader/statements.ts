import type { TableNames } from "@eventlane/core";
import { shardOfSqlText } from "@eventlane/core/internal";
import { createHash } from "node:crypto";

/** A named prepared statement (parsed once per connection). The name is derived from the text. */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

function statement(label: string, text: string): Statement {
  const digest = createHash("sha1").update(text).digest("hex").slice(0, 12);
  return { name: `eventlane_relay_${label}_${digest}`, text };
}

/** The relay's hot-path SQL for one set of table names, kept as readable statements. */
export interface RelayStatements {
  readonly readBatch: Statement;
  readonly readBatchSingleShard: Statement;
  readonly markPublishedFenced: Statement;
  readonly deletePublishedFenced: Statement;
  readonly deletePublished: Statement;
  readonly lockShardForShare: Statement;
  readonly markPublished: Statement;
  readonly recordFailure: Statement;
  readonly parkKey: Statement;
  readonly logDeadLetter: Statement;
  readonly deleteProcessed: Statement;
}

const READ_COLUMNS = `o.id::text AS id, o.event_id::text AS event_id, o.topic, o.key, o.event_type, o.schema_version,
              o.aggregate_type, o.aggregate_id, o.aggregate_version, o.key_sequence::text AS key_sequence,
              COALESCE(o.payload::text, e.payload::text) AS payload, o.headers, o.attempts,
              (extract(epoch FROM o.created_at) * 1000)::float8 AS created_at_ms`;

export function relayStatements(n: TableNames): RelayStatements {
  return {
    // Pending rows of one shard in id order. Reading by status (never by an id cursor) is what makes a
    // row that commits after higher ids still get published (DESIGN invariant 3). Rows of a parked
    // (topic, key) are skipped, so a dead letter holds back only its own key (invariant 7). The shard
    // predicate is the shard expression the Fastify plugin's backlog counts by (core's `shardOf`).
    readBatch: statement(
      "read_batch",
      `SELECT ${READ_COLUMNS}
         FROM ${n.outbox} o
         LEFT JOIN ${n.events} e ON o.payload IS NULL AND e.event_id = o.event_id
        WHERE o.status = 'pending'
          AND ${shardOfSqlText("o.key_hash", "$1::integer")} = $2::integer
          AND NOT (o.id = ANY($4::bigint[]))
          AND NOT EXISTS (SELECT 1 FROM ${n.parkedKeys} p WHERE p.topic = o.topic AND p.key = o.key)
        ORDER BY o.id
        LIMIT $3`,
    ),
    // The same for a single shard, without the shard predicate: the planner cannot estimate that
    // expression's selectivity (it assumes 0.5%) and would then sort the whole pending set instead of
    // walking the pending index in id order and stopping at the limit (50 ms instead of 2 ms for 500
    // rows of a 30k backlog).
    readBatchSingleShard: statement(
      "read_batch_single",
      `SELECT ${READ_COLUMNS}
         FROM ${n.outbox} o
         LEFT JOIN ${n.events} e ON o.payload IS NULL AND e.event_id = o.event_id
        WHERE o.status = 'pending'
          AND NOT (o.id = ANY($2::bigint[]))
          AND NOT EXISTS (SELECT 1 FROM ${n.parkedKeys} p WHERE p.topic = o.topic AND p.key = o.key)
        ORDER BY o.id
        LIMIT $1`,
    ),
    // FOR SHARE blocks a successor's token update until this transaction ends, and the token check
    // then runs on the committed row: a plain guarded UPDATE would race under READ COMMITTED.
    lockShardForShare: statement(
      "lock_shard",
      `SELECT token::text AS token FROM ${n.relayShards} WHERE shard = $1 FOR SHARE`,
    ),
    // Marking a batch in one statement (one round trip instead of four): the CTE takes the shard
    // row FOR SHARE for the statement's transaction, exactly like lockShardForShare + markPublished
    // in an explicit transaction, and the update only happens while the token is ours. Under READ
    // COMMITTED, FOR SHARE waits for a successor's token update and then returns the new version,
    // so a stale leader marks nothing and sees the new token.
    markPublishedFenced: statement(
      "mark_published_fenced",
      `WITH fence AS (SELECT token FROM ${n.relayShards} WHERE shard = $3 FOR SHARE),
            marked AS (
              UPDATE ${n.outbox} SET status = 'published', published_at = now(), published_epoch = $2
               WHERE id = ANY($1::bigint[]) AND status = 'pending' AND (SELECT token FROM fence) = $4::uuid
              RETURNING 1)
       SELECT (SELECT token::text FROM fence) AS token, (SELECT count(*) FROM marked)::integer AS marked`,
    ),
    // The same for `publishedRows: "delete"`.
    deletePublishedFenced: statement(
      "delete_published_fenced",
      `WITH fence AS (SELECT token FROM ${n.relayShards} WHERE shard = $2 FOR SHARE),
            deleted AS (
              DELETE FROM ${n.outbox}
               WHERE id = ANY($1::bigint[]) AND status = 'pending' AND (SELECT token FROM fence) = $3::uuid
              RETURNING 1)
       SELECT (SELECT token::text FROM fence) AS token, (SELECT count(*) FROM deleted)::integer AS marked`,
    ),
    deletePublished: statement(
      "delete_published",
      `DELETE FROM ${n.outbox} WHERE id = ANY($1::bigint[]) AND status = 'pending'`,
    ),
    markPublished: statement(
      "mark_published",
      `UPDATE ${n.outbox} SET status = 'published', published_at = now(), published_epoch = $2
        WHERE id = ANY($1::bigint[]) AND status = 'pending'`,
    ),
    recordFailure: statement(
      "record_failure",
      `UPDATE ${n.outbox}
          SET attempts = attempts + 1, last_error = $2,
              status = CASE WHEN attempts + 1 >= $3 THEN 'dead_lettered' ELSE status END
        WHERE id = $1 AND status = 'pending'
    RETURNING attempts, status, topic, key`,
    ),
    parkKey: statement(
      "park_key",
      `INSERT INTO ${n.parkedKeys} (topic, key, outbox_id, reason) VALUES ($1, $2, $3, $4)
       ON CONFLICT (topic, key) DO NOTHING`,
    ),
    logDeadLetter: statement(
      "log_dead_letter",
      `INSERT INTO ${n.deadLetterLog} (outbox_id, topic, key, action, reason, actor) VALUES ($1, $2, $3, $4, $5, $6)`,
    ),
    // Old rows have low ids, so walking the primary key finds them first and stops early.
    deleteProcessed: statement(
      "delete_processed",
      `DELETE FROM ${n.outbox} WHERE id IN (
         SELECT id FROM ${n.outbox}
          WHERE status IN ('published', 'skipped') AND created_at < now() - ($1::bigint * interval '1 millisecond')
          ORDER BY id LIMIT $2)`,
    ),
  };
}
