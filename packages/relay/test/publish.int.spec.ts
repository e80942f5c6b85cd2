import { Headers } from "@eventlane/core";
import { murmur2, positiveModulo } from "@eventlane/core/internal";
import { createTopics, deleteTopics, readTopic, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRelay,
  RelayStateError,
  ShardCountMismatchError,
  TopicMissingError,
  TopicPartitionsError,
  type Relay,
} from "../src/index.ts";
import {
  countByStatus,
  kafkaClients,
  range,
  type RelayTestDb,
  setupDatabase,
  testEvent,
  testKafkaOptions,
  testRelayOptions as baseOptions,
} from "./support.ts";

describe.each(kafkaClients)("publishing the outbox (%s)", (client) => {
  let t: RelayTestDb;
  const topic = uniqueTopic(`relay.publish.${client}`);
  const gapTopic = uniqueTopic(`relay.gap.${client}`);
  const testRelayOptions: typeof baseOptions = (url, topics, overrides = {}) =>
    baseOptions(url, topics, { kafka: testKafkaOptions(client), ...overrides });
  const Happened = testEvent(topic);
  const GapHappened = testEvent(gapTopic);
  let relay: Relay;
  const published: number[] = [];

  beforeAll(async () => {
    t = await setupDatabase(`el_relay_publish_${client}`);
    await createTopics([
      { topic, partitions: 4 },
      { topic: gapTopic, partitions: 1 },
    ]);
    // A 60 s poll: only NOTIFY explains a publish within a second.
    relay = createRelay(testRelayOptions(t.db.url, [topic, gapTopic], { batchSize: 7, pollIntervalMs: 60_000 }));
    relay.on("batch:published", (e) => published.push(e.count));
    relay.on("error", (e) => console.error("relay error", e.error));
    relay.on("publish:failed", (e) => console.error("publish failed", e));
  });
  afterAll(async () => {
    await relay.stop();
    await deleteTopics([topic, gapTopic]);
    await t.close();
  });

  it("refuses to start when a routed topic is missing, naming it", async () => {
    const missing = uniqueTopic("relay.missing");
    const relay = createRelay(testRelayOptions(t.db.url, [topic, missing]));
    const error = await relay.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TopicMissingError);
    expect((error as TopicMissingError).code).toBe("EVENTLANE_RELAY_TOPIC_MISSING");
    expect((error as TopicMissingError).topics).toEqual([missing]);
    expect(relay.status().running).toBe(false);
    // Nothing was created on the broker.
    const again = createRelay(testRelayOptions(t.db.url, [missing]));
    await expect(again.start()).rejects.toBeInstanceOf(TopicMissingError);
  });

  it("refuses a partition count other than the configured one, and another shard count", async () => {
    const wrongPartitions = createRelay(testRelayOptions(t.db.url, [{ name: topic, partitions: 3 }]));
    const e1 = await wrongPartitions.start().catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(TopicPartitionsError);
    expect(e1).toMatchObject({ topic, expected: 3, actual: 4 });

    // The first start records shard_count = 1 ...
    const first = createRelay(testRelayOptions(t.db.url, [topic]));
    await first.start();
    await first.stop();
    // Two relays of one database: the second waits as a standby; stop it before the main one runs.
    // ... and a relay with another count is refused.
    const other = createRelay(testRelayOptions(t.db.url, [topic], { shardCount: 2 }));
    const e2 = await other.start().catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(ShardCountMismatchError);
    expect(e2).toMatchObject({ recorded: 1, configured: 2 });
    await expect(first.start()).rejects.toBeInstanceOf(RelayStateError);
  });

  it("publishes every row with the invariant-6 headers, keyed and murmur2-partitioned, in order per key", async () => {
    const keys = range(1, 12).map((i) => `order-${i}`);
    for (const n of range(1, 5)) {
      for (const key of keys) {
        await t.store.enqueue(
          t.kysely,
          Happened,
          { key, n },
          { metadata: { traceparent: `00-${"a".repeat(32)}-${"b".repeat(16)}-01` } },
        );
      }
    }
    await startMain();
    const messages = await readTopic(topic, (m) => m.length >= 60);
    expect(messages).toHaveLength(60);
    // Batches are bounded by batchSize.
    expect(Math.max(...published)).toBeLessThanOrEqual(7);
    for (const m of messages) {
      expect(m.partition).toBe(positiveModulo(murmur2(m.key!), 4));
      const data = JSON.parse(m.value!) as { key: string; n: number };
      expect(data.key).toBe(m.key);
      expect(m.headers[Headers.eventType]).toBe("test.happened");
      expect(m.headers[Headers.schemaVersion]).toBe("1");
      expect(m.headers[Headers.eventId]).toMatch(/^[0-9a-f-]{36}$/);
      expect(m.headers[Headers.keySequence]).toBe(String(data.n));
      expect(m.headers[Headers.traceparent]).toMatch(/^00-a{32}-b{16}-01$/);
    }
    for (const key of keys) {
      const ns = messages.filter((m) => m.key === key).map((m) => Number(m.headers[Headers.keySequence]));
      expect(ns).toEqual([1, 2, 3, 4, 5]);
    }
    await waitFor("rows marked published", async () => (await countByStatus(t.pool)).published === 60);
    const epochs = await t.pool.query<{ published_epoch: string }>(
      "SELECT DISTINCT published_epoch::text FROM eventlane.outbox",
    );
    expect(epochs.rows.map((r) => r.published_epoch)).toEqual([String(relay.status().shards[0]!.epoch)]);
    expect(relay.status()).toMatchObject({
      running: true,
      producerConnected: true,
      shards: [{ shard: 0, leader: true }],
    });
  });

  it("publishes an event-sourced row whose payload lives in the events table", async () => {
    await startMain();
    const eventId = "0190c0de-0000-7000-8000-000000000001";
    await t.pool.query(
      `INSERT INTO eventlane.events (stream_id, version, event_id, event_type, schema_version, payload)
       VALUES ('room-7', 1, $1, 'room.booked', 1, '{"room":7}')`,
      [eventId],
    );
    await t.pool.query(
      `INSERT INTO eventlane.outbox (event_id, topic, key, key_hash, event_type, schema_version, aggregate_type, aggregate_id, aggregate_version, payload)
       VALUES ($1, $2, 'room-7', $3, 'room.booked', 1, 'Room', 'room-7', 1, NULL)`,
      [eventId, topic, murmur2("room-7")],
    );
    await t.pool.query("SELECT pg_notify('eventlane_outbox', '')");
    const messages = await readTopic(topic, (m) => m.some((x) => x.key === "room-7"));
    const m = messages.find((x) => x.key === "room-7")!;
    expect(JSON.parse(m.value!)).toEqual({ room: 7 });
    expect(m.headers).toMatchObject({
      [Headers.eventId]: eventId,
      [Headers.aggregateType]: "Room",
      [Headers.aggregateId]: "room-7",
      [Headers.aggregateVersion]: "1",
    });
  });

  it("publishes a row that commits after higher ids were published (commit-order gap)", async () => {
    await startMain();
    // T1 takes the lower id and stays open; T2 commits higher ids that the relay publishes first.
    const t1 = await t.pool.connect();
    await t1.query("BEGIN");
    const low = await t1.query<{ id: string }>(
      `INSERT INTO eventlane.outbox (event_id, topic, key, key_hash, event_type, schema_version, key_sequence, payload)
       VALUES (gen_random_uuid(), $1, 'gap-a', $2, 'test.happened', 1, 1, '{"key":"gap-a","n":1}') RETURNING id::text`,
      [gapTopic, murmur2("gap-a")],
    );
    // Delivered at T1's commit, like a writer's notify.
    await t1.query("SELECT pg_notify('eventlane_outbox', '')");
    const later: string[] = [];
    for (const n of range(1, 3))
      later.push((await t.store.enqueue(t.kysely, GapHappened, { key: "gap-b", n })).outboxId);
    expect(Number(later[0])).toBeGreaterThan(Number(low.rows[0]!.id));
    const before = await readTopic(gapTopic, (m) => m.length >= 3);
    expect(before.map((m) => m.key)).toEqual(["gap-b", "gap-b", "gap-b"]);
    await waitFor("the later rows marked", async () => {
      const r = await t.pool.query(
        "SELECT 1 FROM eventlane.outbox WHERE id = ANY($1::bigint[]) AND status = 'published'",
        [later],
      );
      return r.rowCount === 3;
    });
    await t1.query("COMMIT");
    t1.release();
    const after = await readTopic(gapTopic, (m) => m.some((x) => x.key === "gap-a"));
    expect(after.filter((m) => m.key === "gap-a")).toHaveLength(1);
    const r = await t.pool.query<{ status: string }>("SELECT status FROM eventlane.outbox WHERE id = $1", [
      low.rows[0]!.id,
    ]);
    expect(r.rows[0]!.status).toBe("published");
  });

  it("wakes on NOTIFY well before the poll interval", async () => {
    await startMain();
    await waitFor("the relay leads", () => relay.status().shards[0]!.leader === true, 15_000);
    await waitFor("outbox drained", async () => (await countByStatus(t.pool)).pending === undefined, 15_000);
    await new Promise((r) => setTimeout(r, 300));
    const startedAt = Date.now();
    await t.store.enqueue(t.kysely, Happened, { key: "notify-1", n: 1 });
    await waitFor(
      "notified publish",
      async () =>
        (await t.pool.query("SELECT 1 FROM eventlane.outbox WHERE key = 'notify-1' AND status = 'published'"))
          .rowCount === 1,
      10_000,
      10,
    );
    expect(Date.now() - startedAt).toBeLessThan(2000);
  });

  let started = false;
  async function startMain() {
    if (started) return;
    started = true;
    await relay.start();
  }
});
