import { createQueryId, type Expression, PostgresQueryCompiler, type RawBuilder, sql } from "kysely";
import { positiveModulo } from "./murmur2.ts";

/*
 * The relay shard of an outbox row, the one expression every package computes it with: the relay
 * reads a shard's rows by it, the Fastify plugin counts each shard's backlog by it. `key_hash` is
 * Kafka's murmur2 of the message key, a signed 32-bit integer; `& 2147483647` (0x7fffffff, Kafka's
 * `toPositive`) makes it non-negative before the modulo, as the Kafka partitioner does.
 */

/**
 * `(key_hash & 2147483647) % shard_count` as a Kysely fragment. A string `keyHash` is a column
 * reference (`"o.key_hash"`); a number `shardCount` is sent as a parameter.
 */
export function shardOf(
  keyHash: string | Expression<number>,
  shardCount: number | Expression<number>,
): RawBuilder<number> {
  const hash = typeof keyHash === "string" ? sql.ref(keyHash) : keyHash;
  return sql<number>`(${hash} & ${sql.lit(0x7fffffff)}) % ${shardCount}`;
}

/**
 * {@link shardOf} as SQL text, for statements kept as text (the relay's named prepared statements):
 * both operands are SQL text, e.g. `shardOfSqlText("o.key_hash", "$1::integer")` gives
 * `(o.key_hash & 2147483647) % $1::integer`. Compiled from {@link shardOf}, so the two cannot differ.
 */
export function shardOfSqlText(keyHashSql: string, shardCountSql: string): string {
  const node = shardOf(sql.raw(keyHashSql), sql.raw(shardCountSql)).toOperationNode();
  return new PostgresQueryCompiler().compileQuery(node, createQueryId()).sql;
}

/** {@link shardOf} in TypeScript, for a `key_hash` as stored (murmur2 of the key, signed 32-bit). */
export function shardOfKeyHash(keyHash: number, shardCount: number): number {
  return positiveModulo(keyHash, shardCount);
}
