import { Headers } from "@eventlane/core";
import { createTopics, deleteTopics, testKafka, uniqueTopic, waitFor } from "@eventlane/test-kit";
import type { Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConsumerEventMap, createConsumer } from "../src/index.ts";
import {
  appliedRows,
  CLIENTS,
  type ConsumerTestDb,
  kafkaOptions,
  connectedProducer,
  produce,
  record,
  roomEvents,
  setupConsumerDb,
} from "./fixtures/setup.ts";

let t: ConsumerTestDb;
let producer: Producer;
const topics: string[] = [];
const kafka = testKafka();

beforeAll(async () => {
  producer = await connectedProducer();
});
afterAll(async () => {
  await producer.disconnect();
  await deleteTopics(topics);
});

describe.each(CLIENTS)("%s", (client) => {
  // A database per client: the tests of the two blocks use the same keys.
  beforeAll(async () => {
    t = await setupConsumerDb(`el_consumer_${client}`);
  });
  afterAll(async () => {
    await t.close();
  });
  /** A one-partition topic (so record order across keys is known) and a consumer that logs every effect. */
  async function scenario(
    name: string,
    extra: { onGap?: "continue" | "refuse"; isolation?: "read_committed" | "read_uncommitted" } = {},
  ) {
    const topic = uniqueTopic(`consumer.${client}.${name}`);
    topics.push(topic);
    await createTopics([{ topic, partitions: 1 }]);
    const { RoomBooked, RoomReleased } = roomEvents(topic);
    const seen: { [K in keyof ConsumerEventMap]?: ConsumerEventMap[K][] } = {};
    const consumer = createConsumer({
      kafka: kafkaOptions(client),
      db: t.db,
      groupId: `g-${name}-${topic}`,
      events: [RoomBooked, RoomReleased],
      sessionTimeoutMs: 10_000,
      maxWaitTimeMs: 100,
      ...extra,
      handlers: {
        room_booked: async (event, { trx, eventId, key }) => {
          // A booking for guest "boom" fails in the handler every time.
          if (event.data.guest === "boom") throw new Error("mail server said no");
          await trx
            .insertInto("applied")
            .values({
              event_id: eventId,
              key,
              event_type: event.type,
              detail: `${event.data.guest}:${event.data.nights}`,
            })
            .execute();
        },
      },
    });
    for (const name of [
      "event:applied",
      "event:duplicate",
      "event:dead_lettered",
      "gap:detected",
      "event:ignored",
      "error",
    ] as const) {
      consumer.on(name, (e) => {
        const list = (seen[name] ?? []) as unknown[];
        list.push(e);
        seen[name] = list as never;
      });
    }
    return { topic, consumer, seen, RoomBooked };
  }

  const forTopic = async (key: string) => (await appliedRows(t.db)).filter((r) => r.key === key);

  describe("exactly-once application", () => {
    it("applies a redelivered record once and counts the duplicate (watermark and event-id inbox)", async () => {
      const { topic, consumer, seen } = await scenario("dup");
      const first = record({
        key: "dup-1",
        type: "room_booked",
        schemaVersion: 2,
        sequence: 1,
        value: { roomId: "dup-1", guest: "ann", nights: 2 },
      });
      const second = record({
        key: "dup-1",
        type: "room_booked",
        schemaVersion: 2,
        sequence: 2,
        value: { roomId: "dup-1", guest: "bob", nights: 3 },
      });
      // No position header: deduplicated by event id in the inbox.
      const loose = record({
        key: "dup-2",
        type: "room_booked",
        schemaVersion: 2,
        value: { roomId: "dup-2", guest: "cy", nights: 1 },
      });
      // The replay a relay crash causes: 1, 2, then 1, 2 again; the loose one twice.
      await produce(producer, topic, [first, second, first, second, loose, loose]);
      await consumer.start();
      try {
        await waitFor("6 records handled", () => consumer.stats().applied + consumer.stats().duplicates === 6);
        expect((await forTopic("dup-1")).map((r) => r.detail)).toEqual(["ann:2", "bob:3"]);
        expect((await forTopic("dup-2")).map((r) => r.detail)).toEqual(["cy:1"]);
        expect(consumer.stats()).toMatchObject({ applied: 3, duplicates: 3, deadLettered: 0 });
        expect(seen["event:duplicate"]?.map((d) => [d.key, d.position, d.watermark])).toEqual([
          ["dup-1", 1, 2],
          ["dup-1", 2, 2],
          ["dup-2", null, null],
        ]);
        // Durable: the watermark rows count the position-based duplicates.
        expect(await consumer.totals()).toMatchObject({ duplicates: 2, gaps: 0, deadLetters: 0 });
      } finally {
        await consumer.stop();
      }
    });

    it("upcasts a v1 payload with the definition's upcaster", async () => {
      const { topic, consumer } = await scenario("upcast");
      await produce(producer, topic, [
        record({
          key: "up-1",
          type: "room_booked",
          schemaVersion: 1,
          aggregateVersion: 1,
          value: { roomId: "up-1", guest: "old" },
        }),
      ]);
      await consumer.start();
      try {
        await waitFor("applied", () => consumer.stats().applied === 1);
        expect((await forTopic("up-1")).map((r) => r.detail)).toEqual(["old:1"]);
      } finally {
        await consumer.stop();
      }
    });

    it("commits the Kafka offset only after the handler's transaction commits", async () => {
      const topic = uniqueTopic(`consumer.${client}.offsets`);
      topics.push(topic);
      await createTopics([{ topic, partitions: 1 }]);
      const { RoomBooked } = roomEvents(topic);
      const groupId = `g-offsets-${topic}`;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let inHandler = false;
      const consumer = createConsumer({
        kafka: kafkaOptions(client),
        db: t.db,
        groupId,
        events: [RoomBooked],
        maxWaitTimeMs: 100,
        handlers: {
          room_booked: async (event, { trx, eventId, key }) => {
            await trx
              .insertInto("applied")
              .values({ event_id: eventId, key, event_type: event.type, detail: "gated" })
              .execute();
            inHandler = true;
            await gate;
          },
        },
      });
      const admin = kafka.admin();
      await admin.connect();
      const committed = async () => {
        const r = await admin.fetchOffsets({ groupId, topics: [topic] });
        return r[0]?.partitions[0]?.offset;
      };
      await produce(producer, topic, [
        record({
          key: "off-1",
          type: "room_booked",
          schemaVersion: 2,
          sequence: 1,
          value: { roomId: "off-1", guest: "g", nights: 1 },
        }),
      ]);
      await consumer.start();
      try {
        await waitFor("handler entered", () => inHandler);
        await new Promise((r) => setTimeout(r, 500));
        // The handler's insert is not committed and neither is the offset.
        expect(await committed()).toBe("-1");
        expect(await forTopic("off-1")).toHaveLength(0);
        release();
        await waitFor("offset 1 committed", async () => (await committed()) === "1");
        expect(await forTopic("off-1")).toHaveLength(1);
      } finally {
        release();
        await consumer.stop();
        await admin.disconnect();
      }
    });
  });

  describe("dead letters", () => {
    it("dead-letters undecodable, unknown and failing records with the reason, and the partition keeps flowing", async () => {
      const { topic, consumer, seen } = await scenario("dead", {});
      const ok = (key: string, n: number) =>
        record({
          key,
          type: "room_booked",
          schemaVersion: 2,
          sequence: n,
          value: { roomId: key, guest: `g${n}`, nights: 1 },
        });
      await produce(producer, topic, [
        ok("dl-ok", 1),
        record({ key: "dl-a", type: "room_booked", schemaVersion: 2, sequence: 1, raw: "{not json" }),
        record({ key: "dl-b", type: "room_painted", sequence: 1, value: { roomId: "dl-b" } }),
        record({
          key: "dl-c",
          type: "room_booked",
          schemaVersion: 2,
          sequence: 1,
          value: { roomId: "dl-c", guest: "x", nights: 1.5 },
        }),
        record({
          key: "dl-d",
          type: "room_booked",
          schemaVersion: 7,
          sequence: 1,
          value: { roomId: "dl-d", guest: "x", nights: 1 },
        }),
        record({ key: "dl-e", type: "room_booked", sequence: 1, value: {}, omit: [Headers.eventType] }),
        record({ key: "dl-f", type: "room_booked", schemaVersion: 2, sequence: 1, raw: null }),
        record({
          key: "dl-g",
          type: "room_booked",
          schemaVersion: 2,
          sequence: 1,
          value: { roomId: "dl-g", guest: "boom", nights: 1 },
        }),
        ok("dl-ok", 2),
      ]);
      await consumer.start();
      try {
        await waitFor(
          "the record after the bad ones applied",
          async () => (await forTopic("dl-ok")).length === 2,
          30_000,
        );
        const letters = await consumer.deadLetters.list();
        expect(letters.map((l) => [l.key, l.reason])).toEqual([
          ["dl-a", "invalid_json"],
          ["dl-b", "unknown_event_type"],
          ["dl-c", "invalid_payload"],
          ["dl-d", "upcast_missing"],
          ["dl-e", "invalid_headers"],
          ["dl-f", "invalid_json"],
          ["dl-g", "handler_failed"],
        ]);
        expect(letters.find((l) => l.key === "dl-g")?.detail).toContain("mail server said no");
        expect(letters.find((l) => l.key === "dl-a")?.value).toBe("{not json");
        expect(consumer.stats()).toMatchObject({ applied: 2, deadLettered: 7, handlerFailures: 3 });
        expect(seen["event:dead_lettered"]).toHaveLength(7);
        // A failed handler rolled back: nothing of dl-g was written.
        expect(await forTopic("dl-g")).toHaveLength(0);
      } finally {
        await consumer.stop();
      }
    });
  });

  describe("gaps", () => {
    it("reports a per-key gap and applies it by default", async () => {
      const { topic, consumer, seen } = await scenario("gap");
      const r = (n: number) =>
        record({
          key: "gap-1",
          type: "room_booked",
          schemaVersion: 2,
          sequence: n,
          value: { roomId: "gap-1", guest: `g${n}`, nights: 1 },
        });
      await produce(producer, topic, [r(1), r(2), r(4), r(5)]);
      await consumer.start();
      try {
        await waitFor("4 applied", () => consumer.stats().applied === 4);
        expect(seen["gap:detected"]?.map((g) => [g.key, g.kind, g.expected, g.actual, g.action])).toEqual([
          ["gap-1", "key_sequence", 3, 4, "applied"],
        ]);
        expect(consumer.stats().gaps).toBe(1);
        expect(await consumer.totals()).toMatchObject({ gaps: 1 });
      } finally {
        await consumer.stop();
      }
    });

    it('with onGap "refuse" dead-letters the gap and what follows on that key, while other keys flow', async () => {
      const { topic, consumer, seen } = await scenario("gaprefuse", { onGap: "refuse" });
      const r = (key: string, n: number) =>
        record({
          key,
          type: "room_booked",
          schemaVersion: 2,
          aggregateVersion: n,
          value: { roomId: key, guest: `g${n}`, nights: 1 },
        });
      await produce(producer, topic, [r("gr-1", 1), r("gr-1", 3), r("gr-2", 1), r("gr-1", 4), r("gr-2", 2)]);
      await consumer.start();
      try {
        await waitFor("gr-2 applied twice", async () => (await forTopic("gr-2")).length === 2);
        await waitFor("2 refused", () => consumer.stats().deadLettered === 2);
        expect((await forTopic("gr-1")).map((x) => x.detail)).toEqual(["g1:1"]);
        expect((await consumer.deadLetters.list()).map((l) => [l.key, l.reason])).toEqual([
          ["gr-1", "gap_refused"],
          ["gr-1", "gap_refused"],
        ]);
        expect(seen["gap:detected"]?.map((g) => [g.expected, g.actual, g.action])).toEqual([
          [2, 3, "refused"],
          [2, 4, "refused"],
        ]);
      } finally {
        await consumer.stop();
      }
    });
  });

  describe("isolation", () => {
    it("read_committed never applies a record of an aborted producer transaction", async () => {
      const { topic, consumer } = await scenario("txn", { isolation: "read_committed" });
      const txProducer = kafka.producer({ transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1 });
      await txProducer.connect();
      try {
        const aborted = await txProducer.transaction();
        await aborted.send({
          topic,
          messages: [
            record({
              key: "tx-1",
              type: "room_booked",
              schemaVersion: 2,
              sequence: 1,
              value: { roomId: "tx-1", guest: "zombie", nights: 1 },
            }),
          ],
        });
        await aborted.abort();
        const committed = await txProducer.transaction();
        await committed.send({
          topic,
          messages: [
            record({
              key: "tx-1",
              type: "room_booked",
              schemaVersion: 2,
              sequence: 1,
              value: { roomId: "tx-1", guest: "leader", nights: 1 },
            }),
          ],
        });
        await committed.commit();
      } finally {
        await txProducer.disconnect();
      }
      await consumer.start();
      try {
        await waitFor("applied", () => consumer.stats().applied === 1);
        await new Promise((r) => setTimeout(r, 300));
        expect((await forTopic("tx-1")).map((x) => x.detail)).toEqual(["leader:1"]);
        expect(consumer.stats()).toMatchObject({ received: 1, duplicates: 0 });
      } finally {
        await consumer.stop();
      }
    });
  });

  describe("lifecycle", () => {
    it("refuses to start without its tables, with the schema-version error", async () => {
      const { RoomBooked } = roomEvents("nowhere");
      const consumer = createConsumer({
        kafka: kafkaOptions(client),
        db: t.db,
        groupId: "g-noschema",
        schema: "not_migrated",
        events: [RoomBooked],
        handlers: {},
      });
      await expect(consumer.start()).rejects.toMatchObject({ code: "EVENTLANE_SCHEMA_VERSION" });
    });
  });
});
