import { randomUUID } from "node:crypto";
import { Headers } from "@eventlane/core";
import { murmur2, positiveModulo, uuidv7 } from "@eventlane/core/internal";
import { createRelay } from "@eventlane/relay";
import { createTopics, deleteTopics, testKafka, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VerifyReport } from "../src/index.ts";
import {
  counter,
  eventlane,
  itemEvent,
  type OutboxDb,
  outboxStatuses,
  relayOptions,
  setupOutboxDb,
} from "./support.ts";

const PARTITIONS = 3;
let t: OutboxDb;
// One topic per test that changes what it holds, so the tests do not depend on each other.
const clean = uniqueTopic("cli.verify.clean");
const missing = uniqueTopic("cli.verify.missing");
const reordered = uniqueTopic("cli.verify.reordered");
const expired = uniqueTopic("cli.verify.expired");
const topics = [clean, missing, reordered, expired];
const KEYS = ["k-1", "k-2", "k-3"];
const PER_KEY = 4;
const STREAMS = ["s-1", "s-2"];
/** Each topic's own event type, as each definition has one route. */
const typeOn = (topic: string) => `item.recorded.${topics.indexOf(topic)}`;

beforeAll(async () => {
  t = await setupOutboxDb("el_cli_verify");
  await createTopics(topics.map((topic) => ({ topic, partitions: PARTITIONS })));
  const relay = createRelay(relayOptions(t.database.url, topics));
  await relay.start();
  try {
    // Enqueued events on every topic; event-sourced ones (3 per stream) on the clean topic.
    for (const topic of topics) {
      const Item = itemEvent(topic, typeOn(topic));
      for (let n = 1; n <= PER_KEY; n++) {
        for (const key of KEYS) await t.store.enqueue(t.db, Item, { key, n });
      }
    }
    const { Counter } = counter(clean);
    for (let by = 1; by <= 3; by++) {
      for (const stream of STREAMS) await t.store.handle(t.db, Counter, stream, by);
    }
    const total = topics.length * KEYS.length * PER_KEY + STREAMS.length * 3;
    await waitFor("everything published", async () => (await outboxStatuses(t.pool)).published === total, 20_000);
  } finally {
    await relay.stop();
  }
});
afterAll(async () => {
  await deleteTopics(topics);
  await t.close();
});

const verify = (topic: string, ...args: string[]) => eventlane(["verify", "--topic", topic, ...args], t.env);

describe("eventlane verify", () => {
  it("passes on a topic a real relay published, enqueued and event-sourced events alike", async () => {
    const r = await verify(clean, "--json");
    expect(r.code, r.stderr).toBe(0);
    const report = r.json<VerifyReport>();
    const expectedCount = KEYS.length * PER_KEY + STREAMS.length * 3;
    expect(report).toMatchObject({
      ok: true,
      topic: clean,
      messages: expectedCount,
      distinctEvents: expectedCount,
      expected: { outboxRows: expectedCount, eventsWithoutOutbox: 0 },
      present: expectedCount,
      missing: { count: 0 },
      reordered: { count: 0 },
      splitKeys: { count: 0 },
      duplicates: { count: 0 },
      expired: { count: 0 },
    });
    expect(report.partitions.map((p) => p.partition)).toEqual([0, 1, 2]);
    expect(report.eventTypes).toEqual({ checked: ["counter.counted", typeOn(clean)], unchecked: [] });
    const text = await verify(clean);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`Read ${expectedCount} records`);
    expect(text.stdout).toContain("OK: every expected event is present");

    // Retention removed the event-sourced outbox rows: the events table still says they were published.
    await t.pool.query(`CREATE TABLE eventlane.saved_rows AS SELECT * FROM eventlane.outbox WHERE payload IS NULL`);
    await t.pool.query(`DELETE FROM eventlane.outbox WHERE payload IS NULL`);
    try {
      const unnamed = (await verify(clean, "--json")).json<VerifyReport>();
      expect(unnamed.expected).toEqual({ outboxRows: KEYS.length * PER_KEY, eventsWithoutOutbox: 0 });
      expect(unnamed.eventTypes.unchecked).toEqual(["counter.counted"]);
      const named = await verify(clean, "--event-type", "counter.counted", "--json");
      expect(named.code, named.stderr).toBe(0);
      expect(named.json<VerifyReport>()).toMatchObject({
        ok: true,
        expected: { outboxRows: KEYS.length * PER_KEY, eventsWithoutOutbox: STREAMS.length * 3 },
        present: expectedCount,
      });
    } finally {
      await t.pool.query(`INSERT INTO eventlane.outbox OVERRIDING SYSTEM VALUE SELECT * FROM eventlane.saved_rows`);
      await t.pool.query(`DROP TABLE eventlane.saved_rows`);
    }
  });

  it("fails (exit 1) on a planted missing event: a row marked published that was never sent", async () => {
    const eventId = uuidv7();
    const planted = await t.pool.query<{ id: string }>(
      `INSERT INTO eventlane.outbox (event_id, topic, key, key_hash, event_type, schema_version, key_sequence, payload,
                                     status, published_at, published_epoch)
       VALUES ($1, $2, 'k-2', $3, $4, 1, 99, '{"key":"k-2","n":99}', 'published', now(), 1)
       RETURNING id::text AS id`,
      [eventId, missing, murmur2("k-2"), typeOn(missing)],
    );
    const r = await verify(missing, "--json");
    expect(r.code, r.stderr).toBe(1);
    const report = r.json<VerifyReport>();
    expect(report.ok).toBe(false);
    expect(report.missing).toEqual({
      count: 1,
      listed: [
        expect.objectContaining({
          eventId,
          key: "k-2",
          outboxId: planted.rows[0]!.id,
          position: 99,
          partition: positiveModulo(murmur2("k-2"), PARTITIONS),
          source: "outbox",
        }),
      ],
    });
    expect(report).toMatchObject({ present: KEYS.length * PER_KEY, reordered: { count: 0 }, expired: { count: 0 } });
    const text = await verify(missing);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("MISSING: 1 event");
    expect(text.stdout).toContain(eventId);
    expect(text.stdout).toContain("FAILED");
  });

  it("fails (exit 1) on a planted reordered event, and on a key planted on a second partition", async () => {
    const producer = testKafka().producer();
    await producer.connect();
    const plant = async (key: string, sequence: number, partition: number) => {
      const [sent] = await producer.send({
        topic: reordered,
        messages: [
          {
            key,
            partition,
            value: JSON.stringify({ key, n: sequence }),
            headers: {
              [Headers.eventId]: randomUUID(),
              [Headers.eventType]: typeOn(reordered),
              [Headers.schemaVersion]: "1",
              [Headers.keySequence]: String(sequence),
            },
          },
        ],
      });
      return sent!.baseOffset!;
    };
    try {
      // A new event of k-2 carrying position 1, after the relay's 1..4 of that key.
      const home = positiveModulo(murmur2("k-2"), PARTITIONS);
      const offset = await plant("k-2", 1, home);
      const r = await verify(reordered, "--json");
      expect(r.code, r.stderr).toBe(1);
      const report = r.json<VerifyReport>();
      expect(report.reordered).toEqual({
        count: 1,
        listed: [
          expect.objectContaining({
            key: "k-2",
            partition: home,
            offset,
            positionKind: "sequence",
            position: 1,
            previousPosition: PER_KEY,
          }),
        ],
      });
      expect(report).toMatchObject({ missing: { count: 0 }, splitKeys: { count: 0 }, present: KEYS.length * PER_KEY });
      const text = await verify(reordered);
      expect(text.stdout).toContain("REORDERED: 1 event");
      expect(text.stdout).toMatch(new RegExp(`k-2 +${home} +${offset} +sequence 1 +${PER_KEY}`));

      // k-3's next position, in order, but on a partition k-3 does not map to.
      const away = (positiveModulo(murmur2("k-3"), PARTITIONS) + 1) % PARTITIONS;
      await plant("k-3", PER_KEY + 1, away);
      const split = (await verify(reordered, "--json")).json<VerifyReport>();
      expect(split.splitKeys.listed).toEqual([
        { key: "k-3", partitions: [positiveModulo(murmur2("k-3"), PARTITIONS), away].sort() },
      ]);
      expect(split.reordered.count).toBe(1);
    } finally {
      await producer.disconnect();
    }
  });

  it("reports events the topic's retention removed as expired, not missing (exit 0)", async () => {
    const admin = testKafka().admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(expired);
      await admin.deleteTopicRecords({
        topic: expired,
        partitions: offsets.map((o) => ({ partition: o.partition, offset: o.high })),
      });
    } finally {
      await admin.disconnect();
    }
    const r = await verify(expired, "--json");
    expect(r.code, r.stderr).toBe(0);
    const report = r.json<VerifyReport>();
    expect(report).toMatchObject({
      ok: true,
      messages: 0,
      present: 0,
      missing: { count: 0 },
      expired: { count: KEYS.length * PER_KEY },
    });
    expect(report.partitions.every((p) => p.lowOffset === p.endOffset)).toBe(true);
    expect(report.partitions.some((p) => p.lowOffset !== "0")).toBe(true);
    const text = await verify(expired);
    expect(text.stdout).toContain(`Expired: ${KEYS.length * PER_KEY} events older than the first record`);
  });
});
