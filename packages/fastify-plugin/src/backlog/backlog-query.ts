import type { TableNames } from "@eventlane/core";
import { shardOf } from "@eventlane/core/internal";
import { type Kysely, sql } from "kysely";

/** One shard's backlog and leadership, as the database sees it (cluster-wide). */
export interface ShardBacklog {
  readonly shard: number;
  /** Outbox rows of this shard with status `pending`. */
  readonly pendingRows: number;
  /** Age of the shard's oldest pending row in seconds (0 when nothing is pending). */
  readonly lagSeconds: number;
  /** A relay instance heartbeated the shard row within the staleness threshold. */
  readonly hasLeader: boolean;
  /** The shard row's epoch (0 before the first acquisition, null when the row does not exist). */
  readonly epoch: number | null;
  /** The relay instance named in the shard row, if any. */
  readonly owner: string | null;
  /** Seconds since the shard row's last heartbeat (null when never). */
  readonly heartbeatAgeSeconds: number | null;
}

/** Cluster-wide outbox figures read from the database in one statement. */
export interface BacklogSnapshot {
  /** When the figures were read (this process's clock). */
  readonly observedAt: Date;
  /** How long the query took, in seconds. */
  readonly queryDurationSeconds: number;
  /** `relay_config.shard_count`, 1 when no relay has recorded a count yet. */
  readonly shardCount: number;
  readonly shards: readonly ShardBacklog[];
  readonly pendingRows: number;
  /** The largest per-shard lag. */
  readonly maxLagSeconds: number;
  /** Outbox rows with status `dead_lettered`. */
  readonly deadLetterRows: number;
  /** Rows of `parked_keys`: (topic, key) pairs held back behind a dead letter. */
  readonly parkedKeys: number;
  /** Shards whose row has no heartbeat within the staleness threshold, or no row at all. */
  readonly shardsWithoutLeader: number;
  /** `pg_notification_queue_usage()`: fraction of the NOTIFY queue in use, 0 to 1. */
  readonly notifyQueueUsageRatio: number;
}

interface BacklogRow {
  shard: number;
  shard_count: number;
  pending_rows: number;
  lag_seconds: number;
  has_leader: boolean;
  epoch: number | null;
  owner: string | null;
  heartbeat_age_seconds: number | null;
  dead_letter_rows: number;
  parked_keys: number;
  notify_queue_usage: number;
}

/**
 * The backlog statement. A row's shard is the expression the relay reads its shards by (core's
 * `shardOf`: `(key_hash & 2147483647) % shard_count`). Every shard from 0 to shard_count - 1 gets a
 * row, so a shard with no pending rows reports 0 and a shard that nobody leads is visible. Times come from the database clock, so replicas with skewed
 * clocks agree. Pending rows are counted through the partial index on `status = 'pending'`; the
 * cost grows with the backlog, which is why the statement runs under a `statement_timeout`.
 */
function backlogStatement(n: TableNames, leaderStaleAfterSeconds: number) {
  const outbox = sql.raw(n.outbox);
  return sql<BacklogRow>`
WITH cfg AS (
  SELECT COALESCE((SELECT shard_count FROM ${sql.raw(n.relayConfig)} LIMIT 1), 1) AS shard_count
), all_shards AS (
  SELECT generate_series(0, cfg.shard_count - 1) AS shard, cfg.shard_count FROM cfg
), pending AS (
  SELECT ${shardOf("o.key_hash", sql.ref("cfg.shard_count"))} AS shard,
         count(*) AS pending_rows,
         min(o.created_at) AS oldest
    FROM ${outbox} o CROSS JOIN cfg
   WHERE o.status = 'pending'
   GROUP BY 1
)
SELECT s.shard::int AS shard,
       s.shard_count::int AS shard_count,
       COALESCE(p.pending_rows, 0)::float8 AS pending_rows,
       COALESCE(GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - p.oldest), 0), 0)::float8 AS lag_seconds,
       COALESCE(rs.heartbeat_at > clock_timestamp() - make_interval(secs => ${leaderStaleAfterSeconds}), false) AS has_leader,
       rs.epoch::float8 AS epoch,
       rs.owner AS owner,
       -- GREATEST ignores NULLs, so a shard never heartbeated needs its own case.
       CASE WHEN rs.heartbeat_at IS NULL THEN NULL
            ELSE GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - rs.heartbeat_at), 0)::float8 END AS heartbeat_age_seconds,
       (SELECT count(*) FROM ${outbox} WHERE status = 'dead_lettered')::float8 AS dead_letter_rows,
       (SELECT count(*) FROM ${sql.raw(n.parkedKeys)})::float8 AS parked_keys,
       pg_notification_queue_usage()::float8 AS notify_queue_usage
  FROM all_shards s
  LEFT JOIN pending p ON p.shard = s.shard
  LEFT JOIN ${sql.raw(n.relayShards)} rs ON rs.shard = s.shard
 ORDER BY s.shard`;
}

/**
 * Reads the backlog in one read-only transaction whose `statement_timeout` is `timeoutMs`, so a
 * slow count is cancelled by the server as well as abandoned by the caller.
 */
export async function queryBacklog<DB>(
  db: Kysely<DB>,
  names: TableNames,
  options: { readonly timeoutMs: number; readonly leaderStaleAfterMs: number },
): Promise<BacklogSnapshot> {
  const started = performance.now();
  const rows = await db
    .transaction()
    .setAccessMode("read only")
    .execute(async (trx) => {
      await sql`SELECT set_config('statement_timeout', ${String(options.timeoutMs)}, true)`.execute(trx);
      const result = await backlogStatement(names, options.leaderStaleAfterMs / 1000).execute(trx);
      return result.rows;
    });
  const first = rows[0];
  const shards: ShardBacklog[] = rows.map((r) => ({
    shard: r.shard,
    pendingRows: r.pending_rows,
    lagSeconds: r.lag_seconds,
    hasLeader: r.has_leader,
    epoch: r.epoch,
    owner: r.owner,
    heartbeatAgeSeconds: r.heartbeat_age_seconds,
  }));
  return Object.freeze({
    observedAt: new Date(),
    queryDurationSeconds: (performance.now() - started) / 1000,
    shardCount: first?.shard_count ?? 1,
    shards: Object.freeze(shards),
    pendingRows: shards.reduce((sum, s) => sum + s.pendingRows, 0),
    maxLagSeconds: shards.reduce((max, s) => Math.max(max, s.lagSeconds), 0),
    deadLetterRows: first?.dead_letter_rows ?? 0,
    parkedKeys: first?.parked_keys ?? 0,
    shardsWithoutLeader: shards.filter((s) => !s.hasLeader).length,
    notifyQueueUsageRatio: first?.notify_queue_usage ?? 0,
  });
}
