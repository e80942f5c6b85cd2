import { Headers } from "@eventlane/core";
import { createTopics, deleteTopics, readTopic, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRelay, type Relay } from "../src/index.ts";
import { Wakeup } from "../src/wakeup/wakeup.ts";
import { type RelayTestDb, setupDatabase, testEvent, testRelayOptions } from "./support.ts";

describe("reading the next batch while one is sent", () => {
  let t: RelayTestDb;
  const topic = uniqueTopic("relay.ahead");
  const Ev = testEvent(topic);
  let relay: Relay | undefined;

  beforeAll(async () => {
    t = await setupDatabase("el_relay_ahead");
    await createTopics([{ topic, partitions: 3, config: { "max.message.bytes": "2000" } }]);
  });
  afterAll(async () => {
    await relay?.stop();
    await deleteTopics([topic]);
    await t.close();
  });

  it("drops the read-ahead when a batch has a record failure, so a failed key's later events never overtake it", async () => {
    // Written before the relay starts, so every batch is full (batchSize 2) and reads ahead.
    // Batch 1 is [K1 (oversize), A1]; its read-ahead [K2, A2] must not be used after K1 fails.
    await t.store.enqueue(t.kysely, Ev, { key: "K", n: 1, pad: "x".repeat(3000) });
    for (let n = 1; n <= 12; n++) {
      if (n <= 3 && n > 1) await t.store.enqueue(t.kysely, Ev, { key: "K", n });
      await t.store.enqueue(t.kysely, Ev, { key: "A", n });
      await t.store.enqueue(t.kysely, Ev, { key: "B", n });
    }
    const published: number[] = [];
    relay = createRelay(testRelayOptions(t.db.url, [topic], { batchSize: 2, maxAttempts: 3 }));
    relay.on("batch:published", (e) => published.push(e.count));
    let deadLettered = false;
    relay.on("dead-lettered", () => {
      deadLettered = true;
    });
    await relay.start();
    await waitFor("K1 dead-lettered", () => deadLettered, 15_000);
    const read = await readTopic(topic, (m) => m.filter((x) => x.key !== "K").length >= 24);
    const seq = (key: string) => read.filter((m) => m.key === key).map((m) => Number(m.headers[Headers.keySequence]));
    expect(seq("K")).toEqual([]);
    expect(seq("A")).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(seq("B")).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(Math.max(...published)).toBeLessThanOrEqual(2);
    const pending = await t.pool.query<{ n: string }>(
      "SELECT count(*)::text AS n FROM eventlane.outbox WHERE key = 'K' AND status = 'pending'",
    );
    expect(Number(pending.rows[0]?.n)).toBe(2);
  });
});

describe('publishedRows: "delete"', () => {
  let t: RelayTestDb;
  const topic = uniqueTopic("relay.delete");
  const Ev = testEvent(topic);
  let relay: Relay | undefined;

  beforeAll(async () => {
    t = await setupDatabase("el_relay_delete");
    await createTopics([{ topic, partitions: 3, config: { "max.message.bytes": "2000" } }]);
  });
  afterAll(async () => {
    await relay?.stop();
    await deleteTopics([topic]);
    await t.close();
  });

  it("deletes each row once Kafka has it, in order per key, and keeps the rows it could not publish", async () => {
    await t.store.enqueue(t.kysely, Ev, { key: "X", n: 1, pad: "x".repeat(3000) });
    for (let n = 1; n <= 30; n++) {
      await t.store.enqueue(t.kysely, Ev, { key: "A", n });
      await t.store.enqueue(t.kysely, Ev, { key: "B", n });
    }
    relay = createRelay(testRelayOptions(t.db.url, [topic], { batchSize: 8, publishedRows: "delete", maxAttempts: 1 }));
    await relay.start();
    const read = await readTopic(topic, (m) => m.length >= 60);
    const seq = (key: string) => read.filter((m) => m.key === key).map((m) => Number(m.headers[Headers.keySequence]));
    expect(seq("A")).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(seq("B")).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await waitFor("the outbox emptied of published rows", async () => {
      const r = await t.pool.query<{ status: string; n: string }>(
        "SELECT status, count(*)::text AS n FROM eventlane.outbox GROUP BY status",
      );
      return r.rows.length === 1 && r.rows[0]?.status === "dead_lettered" && r.rows[0]?.n === "1";
    });
  });

  it("refuses an unknown value, naming the option", () => {
    expect(() => createRelay(testRelayOptions(t.db.url, [topic], { publishedRows: "drop" as never }))).toThrow(
      /publishedRows/,
    );
  });
});

describe("Wakeup", () => {
  it("does not lose a wake-up that arrives while nobody waits", async () => {
    const w = new Wakeup();
    const since = w.generation;
    w.wake();
    const started = Date.now();
    await w.wait(5_000, undefined, since);
    expect(Date.now() - started).toBeLessThan(50);
    // Without a wake-up since, it waits (here: until the timer).
    const again = Date.now();
    await w.wait(120, undefined, w.generation);
    expect(Date.now() - again).toBeGreaterThanOrEqual(100);
  });
});
