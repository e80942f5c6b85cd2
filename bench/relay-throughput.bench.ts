// Relay throughput against the bare producer of the same Kafka client, in the same run, for each
// client (kafkajs, @platformatic/kafka) and mode (idempotent, transactional): drain a pre-filled
// outbox (default 200k rows of 1 KiB, 10k keys) through the relay, then send the same messages (same
// keys, values and headers) through the bare producer with identical settings, the same messages
// per batch and one awaited batch at a time (in transactional mode one transaction per batch, as the
// relay does), and with published rows kept (marked) or deleted. Reports messages/s, the ratio, and
// how the two cores were shared between Node, PostgreSQL and the broker.
import { randomBytes } from "node:crypto";
import os from "node:os";
import { Headers, migrateToLatest } from "@eventlane/core";
import { murmur2 } from "@eventlane/core/internal";
import { createRelay, type KafkaClient, type KafkaProducerMode, type PublishedRows } from "@eventlane/relay";
import { createTestDatabase, createTopics, deleteTopics, uniqueTopic } from "@eventlane/test-kit";
import { Producer, stringSerializers } from "@platformatic/kafka";
import { Kafka, logLevel } from "kafkajs";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { progress, writeBarChart } from "./lib/chart.ts";
import { type CpuShare, cpuShare, sampleCpu } from "./lib/cpu.ts";
import { prefillOutbox } from "./lib/prefill.ts";

const BROKERS = ["127.0.0.1:9092"];
const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const only = process.argv.find((a) => a.startsWith("--only="))?.split("=")[1];

interface Message {
  key: string;
  value: string;
  headers: Record<string, string>;
}

function messageFor(g: number, keys: number, note: string): Message {
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

/** One awaited batch at a time through the client's own producer, settings as the relay's adapter. */
interface BareSender {
  send(topic: string, messages: Message[]): Promise<void>;
  close(): Promise<void>;
}

async function bareSender(client: KafkaClient, mode: KafkaProducerMode): Promise<BareSender> {
  if (client === "kafkajs") {
    const kafka = new Kafka({ clientId: "bench-bare", brokers: BROKERS, logLevel: logLevel.NOTHING });
    const producer = kafka.producer(
      mode === "transactional"
        ? {
            idempotent: true,
            maxInFlightRequests: 1,
            transactionalId: `bench-bare-${Date.now()}`,
            allowAutoTopicCreation: false,
          }
        : { idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false },
    );
    await producer.connect();
    return {
      async send(topic, messages) {
        if (mode === "transactional") {
          const tx = await producer.transaction();
          await tx.send({ topic, acks: -1, messages });
          await tx.commit();
        } else {
          await producer.send({ topic, acks: -1, messages });
        }
      },
      close: () => producer.disconnect(),
    };
  }
  const producer = new Producer<string, string, string, string>({
    clientId: "bench-bare",
    bootstrapBrokers: BROKERS,
    idempotent: true,
    acks: -1,
    maxInflights: 1,
    autocreateTopics: false,
    partitioner: (_m, key) => (key === undefined ? 0 : murmur2(key) & 0x7fffffff),
    serializers: stringSerializers,
    ...(mode === "transactional"
      ? { transactionalId: `bench-bare-${Date.now()}`, producerId: -1n, producerEpoch: -1 }
      : {}),
  });
  return {
    async send(topic, messages) {
      const records = messages.map((m) => ({ topic, key: m.key, value: m.value, headers: m.headers }));
      if (mode === "transactional") {
        const tx = await producer.beginTransaction();
        await tx.send({ acks: -1, messages: records });
        await tx.commit();
      } else {
        await producer.send({ acks: -1, messages: records });
      }
    },
    close: () => producer.close(),
  };
}

async function drainThroughRelay(
  url: string,
  topic: string,
  rows: number,
  batchSize: number,
  client: KafkaClient,
  mode: KafkaProducerMode,
  publishedRows: PublishedRows,
) {
  const relay = createRelay({
    connectionString: url,
    kafka: { brokers: BROKERS, client, mode },
    topics: [topic],
    batchSize,
    publishedRows,
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
      if (published - lastReport >= rows / 5) {
        lastReport = published;
        progress(`  relay: ${published}/${rows} published`);
      }
      if (published >= rows) resolve();
    });
  });
  await relay.start();
  await done;
  const t1 = performance.now();
  const after = sampleCpu();
  await relay.stop();
  return { messagesPerSecond: rows / ((t1 - t0) / 1000), cpu: cpuShare(before, after, os.cpus().length) };
}

async function sendThroughBareProducer(
  topic: string,
  rows: number,
  keys: number,
  batchSize: number,
  note: string,
  client: KafkaClient,
  mode: KafkaProducerMode,
) {
  const sender = await bareSender(client, mode);
  // One warm-up batch: the relay's producer is connected before its clock starts too.
  await sender.send(topic, [messageFor(0, keys, note)]);
  const before = sampleCpu();
  const t0 = performance.now();
  let lastReport = 0;
  for (let start = 0; start < rows; start += batchSize) {
    const messages: Message[] = [];
    for (let g = start; g < Math.min(rows, start + batchSize); g++) messages.push(messageFor(g, keys, note));
    await sender.send(topic, messages);
    if (start - lastReport >= rows / 5) {
      lastReport = start;
      progress(`  bare producer: ${start}/${rows} sent`);
    }
  }
  const t1 = performance.now();
  const after = sampleCpu();
  await sender.close();
  return { messagesPerSecond: rows / ((t1 - t0) / 1000), cpu: cpuShare(before, after, os.cpus().length) };
}

export async function main() {
  const rows = arg("rows", 200_000);
  const keys = arg("keys", 10_000);
  const batchSize = arg("batch", 500);
  const note = randomBytes(496).toString("hex");
  type Config = { client: KafkaClient; mode: KafkaProducerMode; publishedRows: PublishedRows };
  const configs = (
    [
      { client: "kafkajs", mode: "idempotent", publishedRows: "keep" },
      { client: "platformatic", mode: "idempotent", publishedRows: "keep" },
      { client: "kafkajs", mode: "transactional", publishedRows: "keep" },
      { client: "platformatic", mode: "transactional", publishedRows: "keep" },
      { client: "kafkajs", mode: "idempotent", publishedRows: "delete" },
      { client: "platformatic", mode: "idempotent", publishedRows: "delete" },
    ] as Config[]
  ).filter((c) => only === undefined || `${c.client}/${c.mode}/${c.publishedRows}` === only);
  const results: Array<{
    adapter: KafkaClient;
    mode: KafkaProducerMode;
    publishedRows: PublishedRows;
    relayMessagesPerSecond: number;
    bareMessagesPerSecond: number;
    ratio: number;
    target: number;
    met: boolean;
    relayCpu: CpuShare;
    bareCpu: CpuShare;
  }> = [];
  for (const { client, mode, publishedRows } of configs) {
    const name = `${client}/${mode}/${publishedRows}`;
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
      progress(`${name}: prefilling ${rows} rows (${keys} keys, 1 KiB payloads)`);
      await prefillOutbox(db, { rows, keys, topic: relayTopic, note, chunk: 50_000 });
      const relay = await drainThroughRelay(database.url, relayTopic, rows, batchSize, client, mode, publishedRows);
      progress(`${name}: relay ${relay.messagesPerSecond.toFixed(0)} msg/s; now the bare producer`);
      // Back-to-back transactions of a bare producer hit CONCURRENT_TRANSACTIONS while the previous
      // commit's markers are written, and the clients back off (kafkajs ~100 ms, @platformatic/kafka
      // longer): its rate is measured on fewer messages, or the run would take many minutes.
      const bareRows = mode === "transactional" ? Math.min(rows, 20_000) : rows;
      const bare = await sendThroughBareProducer(bareTopic, bareRows, keys, batchSize, note, client, mode);
      const ratio = relay.messagesPerSecond / bare.messagesPerSecond;
      progress(`${name}: bare ${bare.messagesPerSecond.toFixed(0)} msg/s, ratio ${ratio.toFixed(3)}`);
      results.push({
        adapter: client,
        mode,
        publishedRows,
        relayMessagesPerSecond: Math.round(relay.messagesPerSecond),
        bareMessagesPerSecond: Math.round(bare.messagesPerSecond),
        ratio: Number(ratio.toFixed(3)),
        target: 0.8,
        met: ratio >= 0.8,
        relayCpu: relay.cpu,
        bareCpu: bare.cpu,
      });
    } finally {
      await db.destroy();
      await deleteTopics([relayTopic, bareTopic]);
      await database.drop();
    }
  }
  const chart = writeBarChart(
    "relay-throughput.svg",
    `Relay vs bare producer, ${rows} x 1 KiB, batch ${batchSize}`,
    "messages per second",
    results.map((r) => ({
      label: `${r.adapter}\n${r.mode}, ${r.publishedRows}\nratio ${r.ratio}`,
      bars: [
        { name: "relay", value: r.relayMessagesPerSecond },
        { name: "bare producer", value: r.bareMessagesPerSecond },
      ],
    })),
  );
  progress(`chart: ${chart}`);
  const relayRate = (client: KafkaClient, mode: KafkaProducerMode) =>
    results.find((r) => r.adapter === client && r.mode === mode && r.publishedRows === "keep")?.relayMessagesPerSecond;
  const txCost = (client: KafkaClient) => {
    const idem = relayRate(client, "idempotent");
    const tx = relayRate(client, "transactional");
    return idem !== undefined && tx !== undefined ? Number((tx / idem).toFixed(3)) : undefined;
  };
  return {
    benchmark: "relay-throughput",
    rows,
    keys,
    batchSize,
    cores: os.cpus().length,
    results,
    // Relay throughput in transactional mode as a share of idempotent mode, per client.
    transactionalToIdempotent: { kafkajs: txCost("kafkajs"), platformatic: txCost("platformatic") },
    chart,
  };
}
