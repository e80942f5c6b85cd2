import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  readTopic,
  testKafka,
  uniqueTopic,
  type TestDatabase,
} from "../src/index.ts";

describe("the real services", () => {
  let db: TestDatabase;
  const topic = uniqueTopic("smoke");

  beforeAll(async () => {
    db = await createTestDatabase("el_smoke");
    await createTopics([{ topic, partitions: 1 }]);
  });
  afterAll(async () => {
    await deleteTopics([topic]);
    await db.drop();
  });

  it("produces and consumes a message through the Kafka broker", async () => {
    const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const body = `hello ${Date.now()}`;
    await producer.send({ topic, acks: -1, messages: [{ key: "k", value: body, headers: { h: "1" } }] });
    await producer.disconnect();
    const read = await readTopic(topic, (m) => m.length >= 1);
    expect(read).toHaveLength(1);
    expect(read[0]).toMatchObject({ key: "k", value: body, headers: { h: "1" } });
  });

  it("does not create topics on demand (auto-creation is off on the broker)", async () => {
    const missing = `${topic}.missing`;
    const producer = testKafka().producer({ retry: { retries: 1 }, allowAutoTopicCreation: true });
    await producer.connect();
    try {
      await expect(producer.send({ topic: missing, messages: [{ value: "x" }] })).rejects.toThrow();
    } finally {
      await producer.disconnect();
    }
    const admin = testKafka().admin();
    await admin.connect();
    const topics = await admin.listTopics();
    await admin.disconnect();
    expect(topics).toContain(topic);
    expect(topics).not.toContain(missing);
  });

  it("takes a session advisory lock on one connection and contends it on another", async () => {
    const a = new pg.Client({ connectionString: db.url });
    const b = new pg.Client({ connectionString: db.url });
    await a.connect();
    await b.connect();
    try {
      const first = await a.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(4242, 1) AS ok");
      const second = await b.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(4242, 1) AS ok");
      expect(first.rows[0]?.ok).toBe(true);
      expect(second.rows[0]?.ok).toBe(false);
      await a.query("SELECT pg_advisory_unlock(4242, 1)");
      const third = await b.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(4242, 1) AS ok");
      expect(third.rows[0]?.ok).toBe(true);
    } finally {
      await a.end();
      await b.end();
    }
  });
});
