import { createTopics, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { type ConsumerKafkaClient, createConsumer, type GroupProtocol } from "../src/index.ts";
import { kafkaOptions, produce, record, roomEvents, fileServices } from "./fixtures/setup.ts";

const files = fileServices("el_consumer_rebalance");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CASES: readonly [ConsumerKafkaClient, GroupProtocol][] = [
  ["kafkajs", "classic"],
  ["platformatic", "classic"],
  ["platformatic", "consumer"],
];

describe.each(CASES)("%s, %s group protocol", (client, groupProtocol) => {
  it("a second consumer joins in the middle of chunks and leaves again: nothing applied twice, nothing skipped", async () => {
    const topic = uniqueTopic(`consumer.rebalance.${client}.${groupProtocol}`);
    files.topics.push(topic);
    await createTopics([{ topic, partitions: 4 }]);
    const prefix = `${client}-${groupProtocol}-`;
    const keys = 20;
    const perKey = 100;
    const records = [];
    for (let n = 1; n <= perKey; n++) {
      for (let k = 0; k < keys; k++) {
        const key = `${prefix}${k}`;
        records.push(
          record({
            key,
            type: "room_booked",
            schemaVersion: 2,
            sequence: n,
            value: { roomId: key, guest: `${n}`, nights: 1 },
          }),
        );
      }
    }
    await produce(files.producer, topic, records);
    const { RoomBooked } = roomEvents(topic);
    // While the second consumer joins and works, the first is slowed down, so that records are left
    // for the second whatever the time a join takes on a loaded machine.
    let holdBack = false;
    const make = (name: string) =>
      createConsumer({
        kafka: { ...kafkaOptions(client), groupProtocol },
        db: files.t.db,
        groupId: `g-${topic}`,
        events: [RoomBooked],
        maxWaitTimeMs: 100,
        batchSize: 40,
        partitionsConsumedConcurrently: 2,
        ...(groupProtocol === "classic" ? { sessionTimeoutMs: 10_000 } : {}),
        handlers: {
          room_booked: async (event, { trx, eventId, key }) => {
            // Slow enough that chunks are in flight when the group rebalances.
            await sleep(name === "a" && holdBack ? 25 : 2);
            await trx
              .insertInto("applied")
              .values({ event_id: eventId, key, event_type: name, detail: event.data.guest })
              .execute();
          },
        },
      });
    const a = make("a");
    const b = make("b");
    const total = keys * perKey;
    const applied = async () =>
      Number(
        (await sql<{ n: string }>`SELECT count(*) AS n FROM applied WHERE key LIKE ${`${prefix}%`}`.execute(files.t.db))
          .rows[0]?.n,
      );
    await a.start();
    try {
      await waitFor("a has applied some", async () => (await applied()) >= 50, 30_000);
      holdBack = true;
      await b.start();
      await waitFor("b has applied some", () => b.stats().applied > 0, 60_000);
      await b.stop();
      holdBack = false;
      await waitFor("everything applied", async () => (await applied()) >= total, 60_000);
      await sleep(300);
      const rows = await sql<{ key: string; guests: string[]; ids: string[] }>`
        SELECT key, array_agg(detail ORDER BY id) AS guests, array_agg(event_id) AS ids
        FROM applied WHERE key LIKE ${`${prefix}%`} GROUP BY key`.execute(files.t.db);
      expect(rows.rows).toHaveLength(keys);
      for (const row of rows.rows) {
        expect(row.guests).toEqual(Array.from({ length: perKey }, (_, i) => `${i + 1}`));
        expect(new Set(row.ids).size).toBe(perKey);
      }
      expect(await applied()).toBe(total);
    } finally {
      await b.stop();
      await a.stop();
    }
  }, 120_000);
});
