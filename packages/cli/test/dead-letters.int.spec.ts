import { randomUUID } from "node:crypto";
import { Headers } from "@eventlane/core";
import { consumerDeadLetters, createConsumer, migrateConsumerToLatest, type ReplayInfo } from "@eventlane/consumer";
import { createRelay, type Relay } from "@eventlane/relay";
import { createTopics, deleteTopics, readTopic, testKafka, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventlane, itemEvent, type OutboxDb, outboxStatuses, relayOptions, setupOutboxDb } from "./support.ts";

let t: OutboxDb;
const routed = uniqueTopic("cli.dl.routed");
const unrouted = uniqueTopic("cli.dl.unrouted");
const consumed = uniqueTopic("cli.dl.consumed");

beforeAll(async () => {
  t = await setupOutboxDb("el_cli_dead_letters");
  await createTopics([
    { topic: routed, partitions: 1 },
    { topic: unrouted, partitions: 2 },
    { topic: consumed, partitions: 1 },
  ]);
});
afterAll(async () => {
  await deleteTopics([routed, unrouted, consumed]);
  await t.close();
});

interface ListedDeadLetter {
  outboxId: string;
  key: string;
  topic: string;
  reason: string;
  attempts: number;
}

describe("eventlane dead-letters on the relay's dead letters", () => {
  it("lists and shows them, requeues one (published before its key's later event) and skips another", async () => {
    // A relay that does not route `unrouted`: its events are dead-lettered at once and park their keys.
    const Poison = itemEvent(unrouted);
    const first: Relay = createRelay(relayOptions(t.database.url, [routed], { maxAttempts: 1 }));
    await first.start();
    let k1: string;
    let j1: string;
    try {
      k1 = (await t.store.enqueue(t.db, Poison, { key: "K", n: 1 })).outboxId;
      await t.store.enqueue(t.db, Poison, { key: "K", n: 2 });
      j1 = (await t.store.enqueue(t.db, Poison, { key: "J", n: 1 })).outboxId;
      await t.store.enqueue(t.db, Poison, { key: "J", n: 2 });
      await waitFor("two dead letters", async () => (await outboxStatuses(t.pool)).dead_lettered === 2, 10_000);
    } finally {
      await first.stop();
    }

    const [listed, byKey, byReason, older, text, shown, withPayload, none] = await Promise.all([
      eventlane(["dead-letters", "list", "--json"], t.env),
      eventlane(["dead-letters", "list", "--key", "K", "--json"], t.env),
      eventlane(["dead-letters", "list", "--reason", "oversize", "--json"], t.env),
      eventlane(["dead-letters", "list", "--older-than", "1h", "--json"], t.env),
      eventlane(["dead-letters", "list", "--topic", unrouted], t.env),
      eventlane(["dead-letters", "show", k1, "--json"], t.env),
      eventlane(["dead-letters", "show", k1, "--payload"], t.env),
      eventlane(["dead-letters", "show", "999999"], t.env),
    ]);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = listed.json<{ deadLetters: ListedDeadLetter[] }>().deadLetters;
    expect(rows.map((d) => [d.outboxId, d.key, d.topic, d.reason, d.attempts])).toEqual([
      [k1, "K", unrouted, "unrouted-topic", 1],
      [j1, "J", unrouted, "unrouted-topic", 1],
    ]);
    expect(byKey.json<{ deadLetters: ListedDeadLetter[] }>().deadLetters.map((d) => d.outboxId)).toEqual([k1]);
    expect(byReason.json<{ deadLetters: unknown[] }>().deadLetters).toEqual([]);
    expect(older.json<{ deadLetters: unknown[] }>().deadLetters).toEqual([]);
    expect(text.stdout).toMatch(/outbox id +topic +key +event type +attempts +dead-lettered +reason +last error/);
    expect(text.stdout).toContain("unrouted-topic");
    expect(shown.code).toBe(0);
    expect(shown.json()).toMatchObject({
      outboxId: k1,
      status: "dead_lettered",
      keySequence: "1",
      parksKey: true,
      waitingRows: 1,
      payloadBytes: expect.any(Number),
      log: [{ action: "dead_lettered", reason: expect.stringMatching(/^unrouted-topic/) }],
    });
    expect(shown.json()).not.toHaveProperty("payload");
    expect(withPayload.stdout).toContain('"n":1');
    expect(withPayload.stdout).toContain("parks its key:");
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("not a dead letter");

    // The route is fixed: a relay that routes the topic; the requeued event goes first, then the key's next.
    const second: Relay = createRelay(relayOptions(t.database.url, [routed, unrouted], { maxAttempts: 1 }));
    await second.start();
    try {
      const requeued = await eventlane(
        ["dead-letters", "requeue", k1, "--actor", "ops:alice", "--note", "route added", "--json"],
        t.env,
      );
      expect(requeued.code, requeued.stderr).toBe(0);
      expect(requeued.json()).toMatchObject({
        source: "relay",
        actor: "ops:alice",
        results: [{ id: k1, topic: unrouted, key: "K", outcome: "requeued" }],
      });
      const ofK = <M extends { key: string | null }>(m: readonly M[]) => m.filter((x) => x.key === "K");
      const published = await readTopic(unrouted, (m) => ofK(m).length >= 2, { timeoutMs: 15_000 });
      expect(ofK(published).map((m) => Number(m.headers[Headers.keySequence]))).toEqual([1, 2]);
      expect(published.some((m) => m.key === "J")).toBe(false);

      const skipped = await eventlane(
        ["dead-letters", "skip", "--all", "--topic", unrouted, "--key", "J", "--actor", "ops:bob", "--json"],
        t.env,
      );
      expect(skipped.code, skipped.stderr).toBe(0);
      expect(skipped.json()).toMatchObject({ results: [{ id: j1, key: "J", outcome: "skipped" }] });
      const ofJ = <M extends { key: string | null }>(m: readonly M[]) => m.filter((x) => x.key === "J");
      const flowing = await readTopic(unrouted, (m) => ofJ(m).length >= 1, { timeoutMs: 15_000 });
      expect(ofJ(flowing).map((m) => Number(m.headers[Headers.keySequence]))).toEqual([2]);

      const [again, nothing, status] = await Promise.all([
        eventlane(["dead-letters", "skip", j1], t.env),
        eventlane(["dead-letters", "requeue", "--all"], t.env),
        eventlane(["status", "--json"], t.env),
      ]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain(`no unresolved dead letter: ${j1}`);
      expect(nothing.code).toBe(1);
      expect(nothing.stdout).toContain("No dead letter matches.");
      expect(status.json()).toMatchObject({ deadLetters: { total: 0 }, parkedKeys: { total: 0 } });
    } finally {
      await second.stop();
    }

    const log = await t.pool.query<{ outbox_id: string; action: string; actor: string; reason: string | null }>(
      "SELECT outbox_id::text, action, actor, reason FROM eventlane.dead_letter_log WHERE action <> 'dead_lettered' ORDER BY id",
    );
    expect(log.rows).toEqual([
      { outbox_id: k1, action: "requeued", actor: "ops:alice", reason: "route added" },
      { outbox_id: j1, action: "skipped", actor: "ops:bob", reason: null },
    ]);
  });
});

describe("eventlane dead-letters --consumer on a consumer's dead letters", () => {
  it("marks one replay-requested (a running consumer applies it) and skips another, each with its actor", async () => {
    const schema = "cli_inbox";
    await migrateConsumerToLatest(t.db, { schema });

    const Item = itemEvent(consumed);
    const groupId = `cli-${consumed}`;
    const broken = new Set([1, 2]);
    const applied: { n: number; replay: ReplayInfo | null }[] = [];
    const consumer = createConsumer({
      kafka: { brokers: t.env.EVENTLANE_KAFKA_BROKERS!.split(",") },
      db: t.db,
      groupId,
      schema,
      events: [Item] as const,
      handlerAttempts: 1,
      replayPollMs: 100,
      maxWaitTimeMs: 100,
      handlers: {
        "item.recorded": async (event, { replay }) => {
          if (broken.has(event.data.n)) throw new Error(`cannot record ${event.data.n}`);
          applied.push({ n: event.data.n, replay });
        },
      },
    });
    consumer.on("error", () => undefined);
    await consumer.start();
    const producer = testKafka().producer();
    await producer.connect();
    try {
      const record = (key: string, n: number, sequence: number) => ({
        key,
        value: JSON.stringify({ key, n }),
        headers: {
          [Headers.eventId]: randomUUID(),
          [Headers.eventType]: "item.recorded",
          [Headers.schemaVersion]: "1",
          [Headers.keySequence]: String(sequence),
        },
      });
      await producer.send({ topic: consumed, messages: [record("A", 1, 1), record("B", 2, 1), record("A", 3, 2)] });
      const log = consumerDeadLetters(t.db, { name: groupId, schema });
      await waitFor("two dead letters", async () => (await log.list()).length === 2, 20_000);
      await waitFor("the healthy record applied", () => applied.some((a) => a.n === 3), 10_000);
      const consumerFlags = ["--consumer", schema, "--name", groupId];

      const [listed, badReason] = await Promise.all([
        eventlane(["dead-letters", "list", ...consumerFlags, "--json"], t.env),
        eventlane(["dead-letters", "list", ...consumerFlags, "--reason", "unrouted-topic"], t.env),
      ]);
      expect(listed.code, listed.stderr).toBe(0);
      expect(badReason.code).toBe(2);
      const rows = listed.json<{ deadLetters: { id: string; key: string; status: string; reason: string }[] }>()
        .deadLetters;
      expect(rows.map((r) => [r.key, r.status, r.reason])).toEqual([
        ["A", "pending", "handler_failed"],
        ["B", "pending", "handler_failed"],
      ]);
      const [a, b] = [rows[0]!.id, rows[1]!.id];

      broken.clear();
      const requeued = await eventlane(
        ["dead-letters", "requeue", a, ...consumerFlags, "--actor", "ops:carol", "--json"],
        t.env,
      );
      expect(requeued.code, requeued.stderr).toBe(0);
      expect(requeued.json()).toMatchObject({ source: "consumer", results: [{ id: a, outcome: "replay_requested" }] });
      await waitFor("the replay applied by the running consumer", () => applied.some((x) => x.n === 1), 10_000);
      expect(applied.find((x) => x.n === 1)?.replay).toMatchObject({ deadLetterId: a, actor: "ops:carol" });

      const skipped = await eventlane(
        ["dead-letters", "skip", b, ...consumerFlags, "--actor", "ops:dan", "--note", "obsolete", "--json"],
        t.env,
      );
      expect(skipped.code, skipped.stderr).toBe(0);
      expect(skipped.json()).toMatchObject({ results: [{ id: b, outcome: "skipped", status: "skipped" }] });
      const [shownA, shownB, skipAgain, replayed] = await Promise.all([
        eventlane(["dead-letters", "show", a, ...consumerFlags, "--json"], t.env),
        eventlane(["dead-letters", "show", b, ...consumerFlags, "--json"], t.env),
        eventlane(["dead-letters", "skip", b, ...consumerFlags], t.env),
        eventlane(["dead-letters", "list", ...consumerFlags, "--status", "replayed", "--json"], t.env),
      ]);
      expect(shownA.json()).toMatchObject({ id: a, status: "replayed", requestedBy: "ops:carol" });
      expect(shownB.json()).toMatchObject({ id: b, status: "skipped", resolvedBy: "ops:dan" });
      expect(skipAgain.code).toBe(1);
      expect(replayed.json<{ deadLetters: { id: string }[] }>().deadLetters.map((d) => d.id)).toEqual([a]);
      expect(applied.filter((x) => x.n === 2)).toEqual([]);
    } finally {
      await producer.disconnect();
      await consumer.stop();
    }
  });
});
