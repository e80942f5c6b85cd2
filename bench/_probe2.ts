import { migrateToLatest, resolveTableNames } from "@eventlane/core";
import { createTestDatabase } from "@eventlane/test-kit";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { relayStatements } from "../packages/relay/src/outbox-reader/statements.ts";
import { prefillOutbox } from "./lib/prefill.ts";
const database = await createTestDatabase("el_probe");
const pool = new pg.Pool({ connectionString: database.url, max: 4, options: "-c plan_cache_mode=force_generic_plan" });
const db = new Kysely({ dialect: new PostgresDialect({ pool }) });
await migrateToLatest(db);
await prefillOutbox(db, { rows: 200000, keys: 10000, topic: "t", note: "x".repeat(992), chunk: 50000 });
await pool.query("INSERT INTO eventlane.relay_shards (shard, token, epoch) VALUES (0, gen_random_uuid(), 1)");
const tok = (await pool.query("SELECT token::text AS t FROM eventlane.relay_shards")).rows[0].t;
const st = relayStatements(resolveTableNames());
let tr = 0,
  tm = 0;
for (let b = 0; b < 400; b++) {
  let a = performance.now();
  const r = await pool.query({ ...st.readBatchSingleShard, values: [500, []] });
  tr += performance.now() - a;
  a = performance.now();
  await pool.query({ ...st.markPublishedFenced, values: [r.rows.map((x: { id: string }) => x.id), 1, 0, tok] });
  tm += performance.now() - a;
  if (b % 50 === 49) {
    console.log(b + 1, "read", (tr / 50).toFixed(1), "mark", (tm / 50).toFixed(1));
    tr = 0;
    tm = 0;
  }
}
await db.destroy();
await database.drop();
