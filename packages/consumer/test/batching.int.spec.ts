import { createTopics, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { type ConsumerOptions, createConsumer } from "../src/index.ts";
import {
  appliedRows,
  CLIENTS,
  kafkaOptions,
  produce,
  record,
  roomEvents,
  fileServices,
  type TestDb,
} from "./fixtures/setup.ts";

const files = fileServices("el_consumer_batch");

const booked = (key: string, n: number, guest = `${key}-${n}`) =>
  record({ key, type: "room_booked", schemaVersion: 2, sequence: n, value: { roomId: key, guest, nights: 1 } });

type Defs = ReturnType<typeof roomEvents>;
type Extra = Partial<ConsumerOptions<TestDb, readonly [Defs["RoomBooked"], Defs["RoomReleased"]]>>;

describe.each(CLIENTS)("%s", (client) => {
  /** A topic of `partitions` partitions with `records` already in it, and a consumer that has not started. */
  async function scenario(name: string, records: ReturnType<typeof record>[], extra: Extra, partitions = 1) {
    const topic = uniqueTopic(`consumer.${client}.${name}`);
    files.topics.push(topic);
    await createTopics([{ topic, partitions }]);
    await produce(files.producer, topic, records);
    const { RoomBooked, RoomReleased } = roomEvents(topic);
    const consumer = createConsumer({
      kafka: kafkaOptions(client),
      db: files.t.db,
      groupId: `g-${topic}`,
      events: [RoomBooked, RoomReleased] as const,
      maxWaitTimeMs: 100,
      replayPollMs: 100,
      ...extra,
    });
    return { topic, consumer };
  }
  const rowsOf = async (prefix: string) => (await appliedRows(files.t.db)).filter((r) => r.key.startsWith(prefix));
  const insert = (trx: Parameters<NonNullable<Extra["handleBatch"]>>[1]["trx"], rows: TestDb["applied"][]) =>
    trx.insertInto("applied").values(rows).execute();

  it("applies a backlog in chunks (one transaction per chunk), every event once, in per-key order", async () => {
    const p = `${client}-bulk-`;
    const records = [];
    for (let n = 1; n <= 40; n++) for (let k = 0; k < 25; k++) records.push(booked(`${p}${k}`, n));
    const { consumer } = await scenario("bulk", records, {
      batchSize: 200,
      handlers: {
        room_booked: async (event, { trx, eventId, key }) => {
          await insert(trx, [{ event_id: eventId, key, event_type: event.type, detail: event.data.guest }]);
        },
      },
    });
    await consumer.start();
    try {
      await waitFor("1000 applied", () => consumer.stats().applied === 1000, 30_000);
      const stats = consumer.stats();
      expect(stats.chunks).toBeGreaterThanOrEqual(5);
      expect(stats.chunks).toBeLessThan(100);
      const rows = await rowsOf(p);
      expect(new Set(rows.map((r) => r.event_id)).size).toBe(1000);
      expect(rows).toHaveLength(1000);
      for (let k = 0; k < 25; k++) {
        const guests = rows.filter((r) => r.key === `${p}${k}`).map((r) => r.detail);
        expect(guests).toEqual(Array.from({ length: 40 }, (_, i) => `${p}${k}-${i + 1}`));
      }
      expect(await consumer.totals()).toMatchObject({ keys: 25, duplicates: 0, gaps: 0 });
    } finally {
      await consumer.stop();
    }
  });

  it("isolates a failing handler in the middle of a chunk: dead-lettered after its attempts, the rest applied once", async () => {
    const p = `${client}-mid-`;
    const records = [];
    for (let n = 1; n <= 10; n++) records.push(booked(`${p}a`, n), booked(`${p}b`, n, n === 5 ? "boom" : `${p}b-${n}`));
    const attempts: number[] = [];
    const { consumer } = await scenario("mid", records, {
      batchSize: 100,
      handlerAttempts: 2,
      handlers: {
        room_booked: async (event, { trx, eventId, key }) => {
          await insert(trx, [{ event_id: eventId, key, event_type: event.type, detail: event.data.guest }]);
          if (event.data.guest === "boom") throw new Error("no rooms on floor 5");
        },
      },
    });
    consumer.on("handler:failed", (f) => attempts.push(f.attempt));
    await consumer.start();
    try {
      await waitFor(
        "19 applied, 1 dead letter",
        () => consumer.stats().applied === 19 && consumer.stats().deadLettered === 1,
        30_000,
      );
      expect(attempts).toEqual([1, 2]);
      const rows = await rowsOf(p);
      // Rolled back every time it failed: the failing record left nothing, the others are there once.
      expect(rows).toHaveLength(19);
      expect(new Set(rows.map((r) => r.event_id)).size).toBe(19);
      expect(rows.filter((r) => r.key === `${p}b`).map((r) => r.detail)).toEqual(
        [1, 2, 3, 4, 6, 7, 8, 9, 10].map((n) => `${p}b-${n}`),
      );
      const [letter] = await consumer.deadLetters.list({ key: `${p}b` });
      expect(letter).toMatchObject({ reason: "handler_failed", status: "pending" });
      expect(letter?.detail).toContain("no rooms on floor 5");
      // The partition keeps flowing: a later record is applied.
      await produce(files.producer, consumer.options.topics[0] as string, [booked(`${p}a`, 11)]);
      await waitFor("the record after it applied", () => consumer.stats().applied === 20);
    } finally {
      await consumer.stop();
    }
  });

  it("handleBatch writes a chunk in one statement; a failing batch is retried one event at a time", async () => {
    const p = `${client}-hb-`;
    const records = [];
    for (let n = 1; n <= 30; n++) records.push(booked(`${p}${n % 3}`, Math.ceil(n / 3), n === 17 ? "boom" : `g${n}`));
    const sizes: number[] = [];
    const { consumer } = await scenario("hb", records, {
      handlerAttempts: 1,
      handleBatch: async (items, { trx }) => {
        sizes.push(items.length);
        if (items.some((i) => i.event.type === "room_booked" && i.event.data.guest === "boom"))
          throw new Error("bulk insert refused");
        await insert(
          trx,
          items.map((i) => ({
            event_id: i.context.eventId,
            key: i.context.key,
            event_type: i.event.type,
            detail: "hb",
          })),
        );
      },
    });
    await consumer.start();
    try {
      await waitFor("29 applied", () => consumer.stats().applied === 29 && consumer.stats().deadLettered === 1, 30_000);
      expect(Math.max(...sizes)).toBeGreaterThan(1);
      const rows = await rowsOf(p);
      expect(rows).toHaveLength(29);
      expect(new Set(rows.map((r) => r.event_id)).size).toBe(29);
      expect((await consumer.deadLetters.list({ key: `${p}2` })).map((l) => l.reason)).toEqual(["handler_failed"]);
    } finally {
      await consumer.stop();
    }
  });

  it("batch handlers per type get runs of consecutive events of their type, so per-key order across types holds", async () => {
    const p = `${client}-runs-`;
    const key = `${p}k`;
    const released = (n: number) => record({ key, type: "room_released", sequence: n, value: { roomId: key } });
    const { consumer } = await scenario("runs", [booked(key, 1), booked(key, 2), released(3), booked(key, 4)], {
      batchHandlers: {
        room_booked: async (items, { trx }) => {
          await insert(
            trx,
            items.map((i) => ({
              event_id: i.context.eventId,
              key,
              event_type: "room_booked",
              detail: `${items.length}`,
            })),
          );
        },
      },
      handlers: {
        room_released: async (event, { trx, eventId }) => {
          await insert(trx, [{ event_id: eventId, key, event_type: event.type, detail: "1" }]);
        },
      },
    });
    await consumer.start();
    try {
      await waitFor("4 applied", () => consumer.stats().applied === 4, 30_000);
      const rows = await sql<{
        event_type: string;
      }>`SELECT event_type FROM applied WHERE key = ${key} ORDER BY id`.execute(files.t.db);
      expect(rows.rows.map((r) => r.event_type)).toEqual([
        "room_booked",
        "room_booked",
        "room_released",
        "room_booked",
      ]);
    } finally {
      await consumer.stop();
    }
  });
});
