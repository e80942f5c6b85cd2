import { createTestDatabase, type TestDatabase } from "@eventlane/test-kit";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { murmur2, shardOf, shardOfKeyHash, shardOfSqlText } from "../src/internal/index.ts";

let database: TestDatabase;
let db: Kysely<unknown>;

beforeAll(async () => {
  database = await createTestDatabase("el_core_shard");
  db = new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 2 }) }) });
});
afterAll(async () => {
  await db.destroy();
  await database.drop();
});

// The int4 edges (a negative hash is where `>>> 0` and `& 0x7fffffff` part ways) and real key hashes.
const hashes = [-2147483648, -1, 0, 1, 2147483647, ...Array.from({ length: 200 }, (_, i) => murmur2(`booking-${i}`))];
const shardCounts = [1, 2, 3, 7, 16];

describe("the shard expression", () => {
  it("is the same in PostgreSQL and in TypeScript, as a Kysely fragment and as text", async () => {
    expect(hashes.some((h) => h < 0)).toBe(true);
    const rows = await sql<{ h: number; n: number; by_fragment: number; by_text: number }>`
      SELECT h, n, ${shardOf("h", sql.ref("n"))} AS by_fragment, ${sql.raw(shardOfSqlText("h", "n"))} AS by_text
        FROM unnest(${hashes}::integer[]) AS h CROSS JOIN unnest(${shardCounts}::integer[]) AS n`.execute(db);
    expect(rows.rows).toHaveLength(hashes.length * shardCounts.length);
    for (const r of rows.rows) {
      const expected = shardOfKeyHash(r.h, r.n);
      expect(r.by_fragment, `hash ${r.h}, ${r.n} shards`).toBe(expected);
      expect(r.by_text).toBe(expected);
      expect(expected).toBeGreaterThanOrEqual(0);
      expect(expected).toBeLessThan(r.n);
    }
  });

  it("sends a numeric shard count as a parameter", async () => {
    const r = await sql<{ shard: number }>`SELECT ${shardOf(sql.lit(-973932308), 3)} AS shard`.execute(db);
    expect(r.rows[0]?.shard).toBe(shardOfKeyHash(-973932308, 3));
    expect(shardOfKeyHash(-973932308, 3)).toBe((-973932308 & 0x7fffffff) % 3);
  });

  it("reads as the relay's statements have always written it", () => {
    expect(shardOfSqlText("o.key_hash", "$1::integer")).toBe("(o.key_hash & 2147483647) % $1::integer");
  });
});
