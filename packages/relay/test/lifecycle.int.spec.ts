import { Headers } from "@eventlane/core";
import { createTopics, deleteTopics, readTopic, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRelay } from "../src/index.ts";
import { countByStatus, range, type RelayTestDb, setupDatabase, testEvent, testRelayOptions } from "./support.ts";

describe("retention and graceful stop", () => {
  let t: RelayTestDb;
  const topic = uniqueTopic("relay.lifecycle");
  const Happened = testEvent(topic);

  beforeAll(async () => {
    t = await setupDatabase("el_relay_life");
    await createTopics([{ topic, partitions: 2 }]);
  });
  afterAll(async () => {
    await deleteTopics([topic]);
    await t.close();
  });

  it("deletes old published and skipped rows in bounded batches, keeps recent and pending ones", async () => {
    for (const n of range(1, 35)) await t.store.enqueue(t.kysely, Happened, { key: `old-${n % 3}`, n });
    await t.pool.query(
      "UPDATE eventlane.outbox SET status = 'published', created_at = now() - interval '2 hours' WHERE id IN (SELECT id FROM eventlane.outbox ORDER BY id LIMIT 30)",
    );
    await t.pool.query(
      "UPDATE eventlane.outbox SET status = 'skipped', created_at = now() - interval '2 hours' WHERE id IN (SELECT id FROM eventlane.outbox WHERE status = 'pending' ORDER BY id LIMIT 2)",
    );
    // Three old rows stay pending while no relay runs: retention must never touch them.
    await t.pool.query("UPDATE eventlane.outbox SET created_at = now() - interval '2 hours' WHERE status = 'pending'");
    const relay = createRelay(
      testRelayOptions(t.db.url, [topic], { retentionMs: 3_600_000, retentionIntervalMs: 200, retentionBatchSize: 10 }),
    );
    const deleted: number[] = [];
    relay.on("retention:deleted", (e) => deleted.push(e.count));
    // Hold the pending rows back: park their keys, so they stay pending while retention runs.
    const pending = await t.pool.query<{ id: string; key: string }>(
      "SELECT id::text, key FROM eventlane.outbox WHERE status = 'pending'",
    );
    for (const p of pending.rows) {
      await t.pool.query(
        "INSERT INTO eventlane.parked_keys (topic, key, outbox_id, reason) VALUES ($1, $2, $3, 'test') ON CONFLICT DO NOTHING",
        [topic, p.key, p.id],
      );
    }
    await relay.start();
    await t.store.enqueue(t.kysely, Happened, { key: "fresh", n: 1 });
    await waitFor("retention ran", () => deleted.reduce((a, b) => a + b, 0) >= 32, 15_000);
    await waitFor("fresh published", async () => (await countByStatus(t.pool)).published === 1, 10_000);
    await relay.stop();
    expect(await countByStatus(t.pool)).toEqual({ pending: 3, published: 1 });
    // 32 old rows at 10 per statement.
    expect(deleted.reduce((a, b) => a + b, 0)).toBe(32);
    await t.pool.query("DELETE FROM eventlane.parked_keys");
  });

  it("stops gracefully: the in-flight batch is sent and marked, nothing half-done, the lock released", async () => {
    const relay = createRelay(testRelayOptions(t.db.url, [topic], { batchSize: 20 }));
    let batches = 0;
    relay.on("batch:published", () => {
      batches++;
    });
    for (const n of range(1, 400)) await t.store.enqueue(t.kysely, Happened, { key: `stop-${n % 7}`, n });
    await relay.start();
    await waitFor("a batch published", () => batches > 0, 10_000, 2);
    await relay.stop();
    expect(relay.status()).toMatchObject({ running: false });
    const counts = await countByStatus(t.pool);
    // It stopped mid-backlog (so the test exercised a stop under work).
    expect(counts.pending ?? 0).toBeGreaterThan(0);
    // Exactly the rows marked published were sent: the in-flight batch finished and was marked.
    const rows = await t.pool.query<{ event_id: string; status: string }>(
      "SELECT event_id::text, status FROM eventlane.outbox WHERE key LIKE 'stop-%'",
    );
    const publishedIds = new Set(rows.rows.filter((r) => r.status === "published").map((r) => r.event_id));
    // Read for a fixed time, so a message sent but left unmarked would show up too.
    const sent = await readTopic(topic, () => false, { timeoutMs: 4000 });
    const sentIds = new Set(sent.filter((m) => m.key?.startsWith("stop-")).map((m) => m.headers[Headers.eventId]!));
    expect([...sentIds].sort()).toEqual([...publishedIds].sort());
    const locks = await t.pool.query(
      "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    expect(locks.rowCount).toBe(0);
  });
});
