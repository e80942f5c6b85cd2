import { Headers } from "@eventlane/core";
import { createTopics, deleteTopics, readTopic, testKafka, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRelay, DeadLetterNotFoundError, type Relay, type RelayEvents } from "../src/index.ts";
import { type RelayTestDb, setupDatabase, testEvent, testRelayOptions } from "./support.ts";

describe("record-level failures, dead letters and parked keys", () => {
  let t: RelayTestDb;
  // A topic whose max.message.bytes is small enough that a padded event is oversize.
  const small = uniqueTopic("relay.small");
  const Small = testEvent(small);
  let relay: Relay;
  const events: { name: keyof RelayEvents; payload: unknown }[] = [];

  beforeAll(async () => {
    t = await setupDatabase("el_relay_dead");
    await createTopics([{ topic: small, partitions: 2, config: { "max.message.bytes": "2000" } }]);
    relay = createRelay(testRelayOptions(t.db.url, [small], { maxAttempts: 3 }));
    for (const name of [
      "record:failed",
      "dead-lettered",
      "key:parked",
      "key:requeued",
      "key:skipped",
      "publish:failed",
    ] as const) {
      relay.on(name, (payload) => events.push({ name, payload }));
    }
    await relay.start();
  });
  afterAll(async () => {
    await relay.stop();
    await deleteTopics([small]);
    await t.close();
  });

  it("dead-letters an oversize record after maxAttempts, parks its key, lets other keys flow, then requeue gives v1, v2, v3", async () => {
    const big = "x".repeat(3000);
    const v1 = await t.store.enqueue(t.kysely, Small, { key: "K", n: 1, pad: big });
    await t.store.enqueue(t.kysely, Small, { key: "K", n: 2 });
    await t.store.enqueue(t.kysely, Small, { key: "K", n: 3 });
    for (let n = 1; n <= 5; n++) await t.store.enqueue(t.kysely, Small, { key: "other", n });

    await waitFor("v1 dead-lettered", () => events.some((e) => e.name === "dead-lettered"), 15_000);
    const failed = events
      .filter((e) => e.name === "record:failed")
      .map((e) => e.payload as RelayEvents["record:failed"]);
    expect(failed.map((f) => f.attempts)).toEqual([1, 2, 3]);
    expect(failed.every((f) => f.outboxId === v1.outboxId && f.reason.startsWith("oversize"))).toBe(true);
    expect(events.find((e) => e.name === "key:parked")?.payload).toEqual({ topic: small, outboxId: v1.outboxId });

    // Other keys flow; nothing of K reaches Kafka.
    const flowed = await readTopic(small, (m) => m.filter((x) => x.key === "other").length >= 5);
    expect(flowed.filter((m) => m.key === "other").map((m) => Number(m.headers[Headers.keySequence]))).toEqual([
      1, 2, 3, 4, 5,
    ]);
    await new Promise((r) => setTimeout(r, 1000));
    const none = await readTopic(small, () => false, { timeoutMs: 1500 });
    expect(none.filter((m) => m.key === "K")).toHaveLength(0);
    const statuses = await t.pool.query<{ n: string; status: string }>(
      "SELECT (payload->>'n') AS n, status FROM eventlane.outbox WHERE key = 'K' ORDER BY id",
    );
    expect(statuses.rows).toEqual([
      { n: "1", status: "dead_lettered" },
      { n: "2", status: "pending" },
      { n: "3", status: "pending" },
    ]);

    const listed = await relay.deadLetters.list({ topic: small });
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ outboxId: v1.outboxId, key: "K", attempts: 3 });
    expect(listed[0]!.lastError).toMatch(/^oversize/);

    // Raise the topic's limit, then requeue: v1 goes first, then v2, v3.
    const admin = testKafka().admin();
    await admin.connect();
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: 2, name: small, configEntries: [{ name: "max.message.bytes", value: "1000000" }] }],
    });
    await admin.disconnect();
    // The relay read max.message.bytes at start: a relay restarted after the change picks the new limit up.
    await relay.stop();
    relay = createRelay(testRelayOptions(t.db.url, [small], { maxAttempts: 3 }));
    relay.on("key:requeued", (payload) => events.push({ name: "key:requeued", payload }));
    await relay.start();
    await relay.deadLetters.requeue(v1.outboxId, { actor: "ops@example", reason: "raised max.message.bytes" });
    const read = await readTopic(small, (m) => m.filter((x) => x.key === "K").length >= 3);
    expect(read.filter((m) => m.key === "K").map((m) => Number(m.headers[Headers.keySequence]))).toEqual([1, 2, 3]);
    expect(events.some((e) => e.name === "key:requeued")).toBe(true);
    const log = await t.pool.query<{ action: string; actor: string }>(
      "SELECT action, actor FROM eventlane.dead_letter_log WHERE outbox_id = $1 ORDER BY id",
      [v1.outboxId],
    );
    expect(log.rows.map((r) => r.action)).toEqual(["dead_lettered", "requeued"]);
    expect(log.rows[1]!.actor).toBe("ops@example");
    expect((await t.pool.query("SELECT 1 FROM eventlane.parked_keys")).rowCount).toBe(0);
  });

  it("skip gives up on a dead letter, records it, and releases the key's later events", async () => {
    const bad = await t.pool.query<{ id: string }>(
      `INSERT INTO eventlane.outbox (event_id, topic, key, key_hash, event_type, schema_version, key_sequence, payload, headers)
       VALUES (gen_random_uuid(), $1, 'S', 0, 'test.happened', 1, 1, '{"key":"S","n":1}', '{"x-bad": 42}') RETURNING id::text`,
      [small],
    );
    await t.store.enqueue(t.kysely, Small, { key: "S", n: 2 });
    await waitFor("S parked", async () => (await relay.deadLetters.list({ key: "S" })).length === 1, 15_000);
    expect((await relay.deadLetters.list({ key: "S" }))[0]!.lastError).toMatch(/invalid-record/);
    await expect(relay.deadLetters.requeue("999999")).rejects.toBeInstanceOf(DeadLetterNotFoundError);
    await relay.deadLetters.skip(bad.rows[0]!.id, { reason: "bad header written by a bug" });
    const read = await readTopic(small, (m) => m.some((x) => x.key === "S"));
    expect(read.filter((m) => m.key === "S").map((m) => (JSON.parse(m.value!) as { n: number }).n)).toEqual([2]);
    const row = await t.pool.query<{ status: string }>("SELECT status FROM eventlane.outbox WHERE id = $1", [
      bad.rows[0]!.id,
    ]);
    expect(row.rows[0]!.status).toBe("skipped");
    const log = await t.pool.query<{ action: string; reason: string }>(
      "SELECT action, reason FROM eventlane.dead_letter_log WHERE outbox_id = $1 ORDER BY id",
      [bad.rows[0]!.id],
    );
    expect(log.rows.map((r) => r.action)).toEqual(["dead_lettered", "skipped"]);
    expect(log.rows[1]!.reason).toBe("bad header written by a bug");
  });
});
