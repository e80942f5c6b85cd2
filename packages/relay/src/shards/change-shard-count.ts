import { type SchemaOptions, resolveTableNames } from "@eventlane/core";
import { integerOption, refuseUnknownOptions } from "@eventlane/core/internal";
import { type Kysely, sql } from "kysely";
import { ShardsHeldError } from "../errors.ts";
import { advisoryLockNamespace } from "../leader/lock-session.ts";

/**
 * Changes the number of shards recorded in `relay_config`: the one supported way to change N.
 *
 * Procedure: stop every relay of the database (a graceful stop releases the shard locks; a killed
 * relay's locks go with its session), call this, then start the relays with the new `shardCount`.
 * Keys map to shards by `(key_hash & 0x7fffffff) % shardCount`, so a new N moves most keys to
 * another shard; pending rows simply belong to their new shard, in the same id order.
 *
 * Refuses with {@link ShardsHeldError} (and changes nothing) while any relay holds a shard lock, and
 * with `InvalidOptionError` for a shard count that is not an integer from 1 to 1024 or an unknown option.
 * The check and the update run in one transaction that locks the `relay_config` row, and a relay
 * re-reads the recorded count (`FOR SHARE`) after every lock acquisition, so a relay still running
 * with the old count can never lead a shard under the new one: it steps back with
 * `ShardCountMismatchError`. Shard rows beyond the new count are deleted. Every shard row kept gets a
 * new random token and `epoch + 1` in the same transaction: a relay of the old count that no longer
 * holds its lock (its session ended, its process paused) but still carries its token would otherwise
 * pass the fence of a kept shard (marking rows that may now belong to another shard's leader) until
 * someone acquired that shard again. Its fenced transactions and heartbeats now fail (`fenced`).
 */
export async function changeShardCount<DB>(
  db: Kysely<DB>,
  shardCount: number,
  options: SchemaOptions = {},
): Promise<{ readonly previous: number | undefined; readonly shardCount: number }> {
  integerOption("shardCount", shardCount, shardCount, 1, 1024);
  refuseUnknownOptions(options, ["schema", "tablePrefix"], "changeShardCount");
  const tables = resolveTableNames(options);
  const namespace = advisoryLockNamespace(tables);
  return db.transaction().execute(async (trx) => {
    const current = await sql<{
      shard_count: number;
    }>`SELECT shard_count FROM ${sql.raw(tables.relayConfig)} FOR UPDATE`.execute(trx);
    const held = await sql<{ shard: number }>`
      SELECT l.objid::integer AS shard FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = ${namespace} AND l.objsubid = 2
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       ORDER BY 1`.execute(trx);
    if (held.rows.length > 0) {
      const shards = held.rows.map((r) => r.shard);
      throw new ShardsHeldError({
        shards,
        message: `relays still hold shards ${shards.join(", ")}: stop every relay before changing the shard count`,
      });
    }
    const previous = current.rows[0]?.shard_count;
    await sql`INSERT INTO ${sql.raw(tables.relayConfig)} (shard_count) VALUES (${shardCount})
              ON CONFLICT (singleton) DO UPDATE SET shard_count = EXCLUDED.shard_count, updated_at = now()`.execute(
      trx,
    );
    await sql`DELETE FROM ${sql.raw(tables.relayShards)} WHERE shard >= ${shardCount}`.execute(trx);
    // Waits for any fenced transaction still holding a kept shard row FOR SHARE, so none commits after this.
    await sql`UPDATE ${sql.raw(tables.relayShards)} SET token = gen_random_uuid(), epoch = epoch + 1`.execute(trx);
    return { previous, shardCount };
  });
}
