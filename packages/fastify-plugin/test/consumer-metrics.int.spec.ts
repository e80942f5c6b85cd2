import { randomUUID } from "node:crypto";
import { createConsumer, migrateConsumerToLatest } from "@eventlane/consumer";
import { defineEvent, Headers } from "@eventlane/core";
import {
  createTopics,
  deleteTopics,
  kafkaBrokers,
  testKafka,
  uniqueTopic,
  waitFor,
  type TestDatabase,
} from "@eventlane/test-kit";
import { Registry } from "@prometheus-io/client";
import { Schema } from "effect";
import Fastify, { type FastifyInstance } from "fastify";
import type { Kysely } from "kysely";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { eventlane, type EventlaneStatus } from "../src/index.ts";
import { migratedDatabase, parseSamples, promtool, sampleValue } from "./support.ts";

let tdb: TestDatabase;
let db: Kysely<unknown>;
let closeDb: () => Promise<void>;
const topics: string[] = [];
const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
let app: FastifyInstance;

beforeAll(async () => {
  // The outbox tables for the plugin's backlog figures, the consumer's tables beside them.
  ({ tdb, db, close: closeDb } = await migratedDatabase());
  await migrateConsumerToLatest(db);
  await producer.connect();
});
afterAll(async () => {
  await producer.disconnect();
  await deleteTopics(topics);
  await closeDb();
});
beforeEach(() => {
  app = Fastify();
});
afterEach(() => app.close());

/** A record with the headers the relay sets. */
function record(key: string, type: string, value: unknown, eventId: string = randomUUID()) {
  return {
    key,
    value: typeof value === "string" ? value : JSON.stringify(value),
    headers: { [Headers.eventId]: eventId, [Headers.eventType]: type, [Headers.schemaVersion]: "1" },
  };
}

async function scrape() {
  const res = await app.inject({ method: "GET", url: "/metrics" });
  expect(res.statusCode).toBe(200);
  return { body: res.body, samples: parseSamples(res.body) };
}

describe("a real consumer on /metrics", () => {
  it("shows its lag while a handler holds a partition, then lag 0 and every outcome once drained", async () => {
    const topic = uniqueTopic("fastify.consumer");
    topics.push(topic);
    await createTopics([{ topic, partitions: 1 }]);
    const InvoiceIssued = defineEvent({
      type: "invoice_issued",
      schema: Schema.Struct({ invoiceId: Schema.String }),
      route: { topic, key: (d) => d.invoiceId },
    });
    const InvoiceVoided = defineEvent({
      type: "invoice_voided",
      schema: Schema.Struct({ invoiceId: Schema.String }),
      route: { topic, key: (d) => d.invoiceId },
    });

    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let boomCalls = 0;
    const groupId = `fastify-metrics-${topic}`;
    const consumer = createConsumer({
      kafka: { brokers: kafkaBrokers },
      db,
      groupId,
      events: [InvoiceIssued, InvoiceVoided],
      handlers: {
        // invoice_voided has no handler: ignored.
        invoice_issued: async (event) => {
          if (event.data.invoiceId === "inv-2") await gate;
          // Fails once (dead-lettered after its single attempt), succeeds when replayed.
          if (event.data.invoiceId === "inv-boom" && boomCalls++ === 0) throw new Error("mail server said no");
        },
      },
      // One record per chunk, so the first commits while the second is held at the gate.
      batchSize: 1,
      handlerAttempts: 1,
      maxWaitTimeMs: 100,
      lagIntervalMs: 200,
    });

    const firstId = randomUUID();
    await producer.send({
      topic,
      acks: -1,
      messages: [
        record("inv-1", "invoice_issued", { invoiceId: "inv-1" }, firstId),
        record("inv-2", "invoice_issued", { invoiceId: "inv-2" }),
        record("inv-3", "invoice_voided", { invoiceId: "inv-3" }),
        record("inv-boom", "invoice_issued", { invoiceId: "inv-boom" }),
        record("inv-4", "invoice_issued", "not json"),
        // inv-1 delivered again with its event id: a duplicate.
        record("inv-1", "invoice_issued", { invoiceId: "inv-1" }, firstId),
      ],
    });

    const registry = new Registry();
    await app.register(eventlane, { db, consumers: [consumer], backlog: { cacheTtlMs: 0 }, metrics: { registry } });
    await app.ready();
    expect(app.eventlane.consumers).toEqual([consumer]);

    // Not started: zero counters and no lag series (the committed offset is not known).
    const idle = (await scrape()).samples;
    expect(sampleValue(idle, "eventlane_consumer_events_total", { group: groupId, outcome: "applied" })).toBe(0);
    expect(idle.filter((s) => s.name === "eventlane_consumer_lag_records")).toEqual([]);

    try {
      await consumer.start();
      const lagLabels = { group: groupId, topic, partition: "0" };
      // inv-1's chunk committed offset 1; inv-2 waits at the gate; the partition ends at 6.
      await waitFor("the consumer's lag of 5", () => consumer.lag().some((p) => p.lag === 5), 20_000);
      const held = await scrape();
      expect(sampleValue(held.samples, "eventlane_consumer_lag_records", lagLabels)).toBe(5);
      expect(sampleValue(held.samples, "eventlane_consumer_events_total", { group: groupId, outcome: "applied" })).toBe(
        1,
      );
      const heldStatus = await app.inject({ method: "GET", url: "/eventlane/status" });
      expect(heldStatus.statusCode).toBe(200);
      expect(heldStatus.json<EventlaneStatus>().consumers).toEqual([
        {
          group: groupId,
          maxLagRecords: 5,
          partitions: [{ topic, partition: 0, committedOffset: "1", endOffset: "6", lag: 5 }],
        },
      ]);

      release();
      await waitFor("the partition drained", () => consumer.lag().some((p) => p.lag === 0), 20_000);
      const { body, samples } = await scrape();
      const events = (outcome: string) =>
        sampleValue(samples, "eventlane_consumer_events_total", { group: groupId, outcome });
      expect(sampleValue(samples, "eventlane_consumer_lag_records", lagLabels)).toBe(0);
      expect(events("applied")).toBe(2);
      expect(events("ignored")).toBe(1);
      expect(events("duplicate")).toBe(1);
      expect(events("dead_lettered")).toBe(2);
      expect(sampleValue(samples, "eventlane_consumer_handler_failures_total", { group: groupId })).toBe(1);
      expect(sampleValue(samples, "eventlane_consumer_errors_total", { group: groupId })).toBe(0);
      const chunks = sampleValue(samples, "eventlane_consumer_chunks_total", { group: groupId }) ?? 0;
      expect(chunks).toBeGreaterThan(0);
      expect(chunks).toBe(consumer.stats().chunks);
      expect(sampleValue(samples, "eventlane_consumer_dead_letters_replayed_total", { group: groupId })).toBe(0);
      // Labels are the group, the topic and the partition: no key, payload, event id or database name.
      for (const secret of ["inv-", "not json", firstId, "mail server", tdb.name]) expect(body).not.toContain(secret);
      const check = await promtool(["check", "metrics"], body);
      expect(check.output).toBe("");
      expect(check.code).toBe(0);

      const failed = await consumer.deadLetters.list({ reason: "handler_failed" });
      expect(failed).toHaveLength(1);
      await consumer.deadLetters.replay(failed[0]?.id ?? "", { actor: "test" });
      const replayed = (await scrape()).samples;
      expect(sampleValue(replayed, "eventlane_consumer_dead_letters_replayed_total", { group: groupId })).toBe(1);

      const drained = (await app.inject({ method: "GET", url: "/eventlane/status" })).json<EventlaneStatus>();
      expect(drained.consumers[0]?.maxLagRecords).toBe(0);
      expect(drained.conditions.find((c) => c.name === "consumer_lag")).toMatchObject({
        firing: false,
        value: 0,
        threshold: 10_000,
      });
    } finally {
      release();
      await consumer.stop();
    }

    // Closing the app takes the consumer metrics out of the caller's registry.
    expect(registry.getMetricsAsArray().filter((m) => m.name.startsWith("eventlane_consumer_"))).toHaveLength(6);
    await app.close();
    expect(registry.getMetricsAsArray().filter((m) => m.name.startsWith("eventlane_consumer_"))).toEqual([]);
  });
});
