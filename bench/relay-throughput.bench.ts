// Relay throughput against the bare producer of the same Kafka client, in the same run: drain a
// pre-filled outbox (default 200k rows of 1 KiB, 10k keys) through the relay, then send the same
// messages (same keys, values and headers) through the bare producer with identical settings, the
// same messages per batch and one awaited batch at a time. Reports messages/s, the ratio, and how the
// two cores were shared between Node, PostgreSQL and the broker.
import { randomBytes } from "node:crypto";
import os from "node:os";
import { Headers, migrateToLatest } from "@eventlane/core";
import { createRelay } from "@eventlane/relay";
import { createTestDatabase, createTopics, deleteTopics, uniqueTopic } from "@eventlane/test-kit";
import { Kafka, logLevel } from "kafkajs";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { progress, writeBarChart } from "./lib/chart.ts";
import { cpuShare, sampleCpu } from "./lib/cpu.ts";
import { prefillOutbox } from "./lib/prefill.ts";

const BROKERS = ["127.0.0.1:9092"];
const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);

function messageFor(g: number, keys: number, note: string) {
  return {
    key: `k-${g % keys}`,
    // jsonb's text form of jsonb_build_object('n', g, 'note', note): what the relay reads back
    value: `{"n": ${g}, "note": "${note}"}`,
    headers: {
      [Headers.eventId]: "018f3b4e-0000-7000-8000-000000000000",
      [Headers.eventType]: "bench_event",
      [Headers.schemaVersion]: "1",
      [Headers.keySequence]: String(Math.floor(g / keys) + 1),
    },
  };
}

async function drainThroughRelay(url: string, topic: string, rows: number, batchSize: number) {
  const relay = createRelay({
    connectionString: url,
    kafka: { brokers: BROKERS },
    topics: [topic],
    batchSize,
    retentionIntervalMs: 3_600_000,
  });
  let published = 0;
  let lastReport = 0;
  // The clock starts when the relay leads its shard: start-up checks and the lock are not draining.
  let t0 = 0;
  let before = sampleCpu();
  relay.on("leader:acquired", () => {
    t0 = performance.now();
    before = sampleCpu();
  });
  const done = new Promise<void>((resolve) => {
    relay.on("batch:published", (e) => {
      published += e.count;
      if (published - lastReport >= rows / 10) {
        lastReport = published;
        progress(`relay: ${published}/${rows} published`);
      }
      if (published >= rows) resolve();
    });
  });
  await relay.start();
  await done;
  const t1 = performance.now();
  const after = sampleCpu();
  await relay.stop();
  return {
    messagesPerSecond: rows / ((t1 - t0) / 1000),
    seconds: (t1 - t0) / 1000,
    cpu: cpuShare(before, after, os.cpus().length),
  };
}

async function sendThroughBareProducer(topic: string, rows: number, keys: number, batchSize: number, note: string) {
  const kafka = new Kafka({ clientId: "bench-bare", brokers: BROKERS, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const before = sampleCpu();
  const t0 = performance.now();
  let lastReport = 0;
  for (let start = 0; start < rows; start += batchSize) {
    const messages = [];
    for (let g = start; g < Math.min(rows, start + batchSize); g++) messages.push(messageFor(g, keys, note));
    await producer.send({ topic, acks: -1, messages });
    if (start - lastReport >= rows / 10) {
      lastReport = start;
      progress(`bare producer: ${start}/${rows} sent`);
    }
  }
  const t1 = performance.now();
  const after = sampleCpu();
  await producer.disconnect();
  return {
    messagesPerSecond: rows / ((t1 - t0) / 1000),
    seconds: (t1 - t0) / 1000,
    cpu: cpuShare(before, after, os.cpus().length),
  };
}

export async function main() {
  const rows = arg("rows", 200_000);
  const keys = arg("keys", 10_000);
  const batchSize = arg("batch", 500);
  const note = randomBytes(496).toString("hex");
  const database = await createTestDatabase("el_bench_relay");
  const pool = new pg.Pool({ connectionString: database.url, max: 4 });
  pool.on("error", () => undefined);
  const db = new Kysely({ dialect: new PostgresDialect({ pool }) });
  const relayTopic = uniqueTopic("bench.relay");
  const bareTopic = uniqueTopic("bench.bare");
  try {
    await migrateToLatest(db);
    await createTopics([
      { topic: relayTopic, partitions: 6 },
      { topic: bareTopic, partitions: 6 },
    ]);
    progress(`prefilling ${rows} rows (${keys} keys, 1 KiB payloads)`);
    await prefillOutbox(db, { rows, keys, topic: relayTopic, note });
    const bytes = await sql<{
      b: string;
    }>`SELECT avg(octet_length(payload::text))::int AS b FROM eventlane.outbox`.execute(db);
    progress(`average payload ${bytes.rows[0]?.b} bytes; draining through the relay`);
    const relay = await drainThroughRelay(database.url, relayTopic, rows, batchSize);
    progress(`relay: ${relay.messagesPerSecond.toFixed(0)} msg/s; now the bare producer`);
    const bare = await sendThroughBareProducer(bareTopic, rows, keys, batchSize, note);
    progress(`bare: ${bare.messagesPerSecond.toFixed(0)} msg/s`);
    const ratio = relay.messagesPerSecond / bare.messagesPerSecond;
    const chart = writeBarChart(
      "relay-throughput.svg",
      `Relay vs bare producer (kafkajs, idempotent), ${rows} x 1 KiB, batch ${batchSize}`,
      "messages per second",
      [
        {
          label: "kafkajs / idempotent",
          bars: [
            { name: "relay", value: Math.round(relay.messagesPerSecond) },
            { name: "bare producer", value: Math.round(bare.messagesPerSecond) },
          ],
        },
      ],
    );
    progress(`chart: ${chart}`);
    return {
      benchmark: "relay-throughput",
      rows,
      keys,
      batchSize,
      results: [
        {
          adapter: "kafkajs",
          mode: "idempotent",
          relayMessagesPerSecond: Math.round(relay.messagesPerSecond),
          bareMessagesPerSecond: Math.round(bare.messagesPerSecond),
          ratio: Number(ratio.toFixed(3)),
          target: 0.8,
          met: ratio >= 0.8,
          relayCpu: relay.cpu,
          bareCpu: bare.cpu,
        },
      ],
      chart,
    };
  } finally {
    await db.destroy();
    await deleteTopics([relayTopic, bareTopic]);
    await database.drop();
  }
}
