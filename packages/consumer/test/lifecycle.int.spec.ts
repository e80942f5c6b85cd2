import { createTopics, kafkaBrokers, testKafka, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { Effect, Layer } from "effect";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { type ConsumerEventMap, ConsumerService, consumerLayer, createConsumer } from "../src/index.ts";
import { CLIENTS, kafkaOptions, produce, record, roomEvents, fileServices } from "./fixtures/setup.ts";

const files = fileServices("el_consumer_life");

const booked = (key: string, n: number) =>
  record({
    key,
    type: "room_booked",
    schemaVersion: 2,
    sequence: n,
    value: { roomId: key, guest: `g${n}`, nights: 1 },
  });

describe("start-up errors", () => {
  it("fails start() with a typed error when the database cannot be reached", async () => {
    const db = new Kysely<unknown>({
      dialect: new PostgresDialect({
        pool: new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:1/none", max: 1 }),
      }),
    });
    const { RoomBooked } = roomEvents("nowhere");
    const consumer = createConsumer({ kafka: { brokers: kafkaBrokers }, db, groupId: "g-nodb", events: [RoomBooked] });
    try {
      await expect(consumer.start()).rejects.toMatchObject({
        code: "EVENTLANE_DATABASE_UNREACHABLE",
        _tag: "DatabaseUnreachableError",
      });
    } finally {
      await db.destroy();
    }
  });

  it("waits for an unreachable Kafka with backoff, reporting each try, until stopped", async () => {
    const { RoomBooked } = roomEvents("nowhere");
    const consumer = createConsumer({
      kafka: { brokers: ["127.0.0.1:1"], connectionTimeoutMs: 200 },
      db: files.t.db,
      groupId: "g-nokafka",
      events: [RoomBooked],
    });
    const waits: ConsumerEventMap["kafka:waiting"][] = [];
    consumer.on("kafka:waiting", (w) => waits.push(w));
    let settled: "resolved" | "rejected" | null = null;
    const started = consumer.start().then(
      () => {
        settled = "resolved";
      },
      () => {
        settled = "rejected";
      },
    );
    await waitFor("a kafka:waiting event", () => waits.length >= 1, 30_000);
    expect(waits[0]).toMatchObject({ attempt: 1, retryInMs: 1_000 });
    expect(settled).toBeNull();
    await consumer.stop();
    await started;
    expect(settled).toBe("resolved");
  });
});

describe.each(CLIENTS)("%s", (client) => {
  it("reports a lag of 0 once drained, also past the transaction markers of a transactional producer", async () => {
    const topic = uniqueTopic(`consumer.lag.${client}`);
    files.topics.push(topic);
    await createTopics([{ topic, partitions: 2 }]);
    const tx = testKafka().producer({ transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1 });
    await tx.connect();
    try {
      for (let n = 1; n <= 3; n++) {
        const txn = await tx.transaction();
        await txn.send({ topic, messages: [booked(`${client}-lag-a`, n), booked(`${client}-lag-b`, n)] });
        await txn.commit();
      }
    } finally {
      await tx.disconnect();
    }
    const { RoomBooked } = roomEvents(topic);
    const consumer = createConsumer({
      kafka: kafkaOptions(client),
      db: files.t.db,
      groupId: `g-${topic}`,
      events: [RoomBooked],
      maxWaitTimeMs: 100,
      lagIntervalMs: 200,
    });
    const updates: ConsumerEventMap["lag:updated"][] = [];
    consumer.on("lag:updated", (u) => updates.push(u));
    await consumer.start();
    try {
      await waitFor("6 ignored (no handler)", () => consumer.stats().ignored === 6, 30_000);
      await waitFor(
        "lag 0 on both partitions",
        () => consumer.lag().length === 2 && consumer.lag().every((p) => p.lag === 0),
        30_000,
      );
      for (const p of consumer.lag()) expect(BigInt(p.endOffset)).toBeGreaterThan(3n);
      expect(updates.length).toBeGreaterThan(0);
    } finally {
      await consumer.stop();
    }
  });

  it("runs as an Effect layer: started when built, stopped when its scope closes", async () => {
    const topic = uniqueTopic(`consumer.layer.${client}`);
    files.topics.push(topic);
    await createTopics([{ topic, partitions: 1 }]);
    await produce(files.producer, topic, [booked(`${client}-layer`, 1)]);
    const { RoomBooked } = roomEvents(topic);
    const layer = consumerLayer({
      kafka: kafkaOptions(client),
      db: files.t.db,
      groupId: `g-${topic}`,
      events: [RoomBooked],
      maxWaitTimeMs: 100,
      handlers: {
        room_booked: async (_event, { trx, eventId, key }) => {
          await trx.insertInto("applied").values({ event_id: eventId, key, event_type: "layer", detail: "" }).execute();
        },
      },
    });
    let stopped = false;
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const consumer = yield* ConsumerService;
          consumer.on("consumer:stopped", () => {
            stopped = true;
          });
          yield* Effect.promise(() => waitFor("applied", () => consumer.stats().applied === 1, 30_000));
        }).pipe(Effect.provide(Layer.fresh(layer))),
      ),
    );
    expect(stopped).toBe(true);
  });
});
