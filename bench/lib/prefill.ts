import { murmur2 } from "@eventlane/core/internal";
import { type Kysely, sql } from "kysely";
import { progress } from "./chart.ts";

/**
 * Fills the outbox with `rows` pending rows as `enqueue` would have written them (per-key sequences,
 * murmur2 key hashes), `keys` distinct keys, 1 KiB payloads, in chunks, with progress.
 */
export async function prefillOutbox<DB>(
  db: Kysely<DB>,
  options: { rows: number; keys: number; topic: string; note: string; chunk?: number },
): Promise<void> {
  const chunk = options.chunk ?? 20_000;
  const hashes = Array.from({ length: options.keys }, (_, i) => murmur2(`k-${i}`));
  for (let start = 0; start < options.rows; start += chunk) {
    const end = Math.min(options.rows, start + chunk) - 1;
    await sql`
      INSERT INTO eventlane.outbox (event_id, topic, key, key_hash, event_type, schema_version, key_sequence, payload)
      SELECT gen_random_uuid(), ${options.topic}, 'k-' || (g % ${options.keys}), (${hashes}::int[])[(g % ${options.keys}) + 1],
             'bench_event', 1, (g / ${options.keys}) + 1, jsonb_build_object('n', g, 'note', ${options.note}::text)::json
      FROM generate_series(${start}::int, ${end}::int) AS g
      ORDER BY g`.execute(db);
    progress(`prefill: ${end + 1}/${options.rows} rows`);
  }
  await sql`VACUUM ANALYZE eventlane.outbox`.execute(db);
}
