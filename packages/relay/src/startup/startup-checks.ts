import { assertSchemaVersion, type TableNames } from "@eventlane/core";
import { Kysely, PostgresDialect } from "kysely";
import type pg from "pg";
import { ShardCountMismatchError, TopicMissingError, TopicPartitionsError } from "../errors.ts";
import type { RelayTopic } from "../options.ts";
import type { ProducerPort, TopicDescription } from "../producer/producer-port.ts";

/** Checks the schema version with core's `assertSchemaVersion` (throws `SchemaVersionError`). */
export async function checkSchemaVersion(pool: pg.Pool, tables: TableNames): Promise<void> {
  // A Kysely over the relay's pool; it is never destroyed, so the pool stays the relay's to end.
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
  await assertSchemaVersion(db, { schema: tables.schema, tablePrefix: tables.tablePrefix });
}

/**
 * Records the shard count in `relay_config` on first start, and refuses to run with another count
 * ({@link ShardCountMismatchError}). Creates the shard rows.
 */
export async function checkShardCount(pool: pg.Pool, tables: TableNames, shardCount: number): Promise<void> {
  await pool.query(`INSERT INTO ${tables.relayConfig} (shard_count) VALUES ($1) ON CONFLICT (singleton) DO NOTHING`, [
    shardCount,
  ]);
  const r = await pool.query<{ shard_count: number }>(`SELECT shard_count FROM ${tables.relayConfig}`);
  const recorded = r.rows[0]?.shard_count;
  if (recorded !== shardCount) {
    throw new ShardCountMismatchError({
      recorded: recorded ?? 0,
      configured: shardCount,
      message:
        `shardCount is ${shardCount} but the database records ${recorded}: every relay of one database must ` +
        `use the same count (changing it needs every relay stopped and relay_config updated)`,
    });
  }
  await pool.query(
    `INSERT INTO ${tables.relayShards} (shard) SELECT generate_series(0, $1::integer - 1) ON CONFLICT (shard) DO NOTHING`,
    [shardCount],
  );
}

/**
 * Checks every configured topic exists (never auto-created) with the expected partition count, and
 * returns each topic's description (for `max.message.bytes`).
 */
export async function checkTopics(
  producer: ProducerPort,
  topics: readonly RelayTopic[],
): Promise<ReadonlyMap<string, TopicDescription>> {
  const described = await producer.describeTopics(topics.map((t) => t.name));
  const missing = described.filter((d) => !d.exists).map((d) => d.name);
  if (missing.length > 0) {
    throw new TopicMissingError({
      topics: missing,
      message: `topics ${missing.map((t) => `"${t}"`).join(", ")} do not exist; create them (the relay never auto-creates topics)`,
    });
  }
  const byName = new Map(described.map((d) => [d.name, d]));
  for (const t of topics) {
    const d = byName.get(t.name)!;
    if (t.partitions !== undefined && d.partitions !== t.partitions) {
      throw new TopicPartitionsError({
        topic: t.name,
        expected: t.partitions,
        actual: d.partitions,
        message: `topic "${t.name}" has ${d.partitions} partitions, the relay's topics option expects ${t.partitions}`,
      });
    }
  }
  return byName;
}
