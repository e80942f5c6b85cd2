// End-to-end latency: commit of the writing transaction -> receipt by a Kafka consumer, through the
// relay. First the sustained end-to-end rate is measured (closed-loop writers, counted at the
// consumer); then open-loop writers commit at fixed rates of 10% and 50% of it. A commit is
// timestamped when COMMIT returns, the receipt when the consumer gets the message (same process, same
// clock). Reports p50, p99 and max per rate, with a CDF chart.
import { Schema } from "effect";
import { createEventStore, defineEvent, migrateToLatest } from "@eventlane/core";
import { createRelay, type KafkaClient, type KafkaProducerMode } from "@eventlane/relay";
import { createTestDatabase, createTopics, deleteTopics, uniqueTopic } from "@eventlane/test-kit";
import { Consumer, stringDeserializers } from "@platformatic/kafka";
import { Kafka, logLevel } from "kafkajs";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { progress, quantile, writeLineChart } from "./lib/chart.ts";

const BROKERS = ["127.0.0.1:9092"];
const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);

/** The receiving side: a consumer of either client, reading the topic from the beginning. */
interface Reader {
  close(): Promise<void>;
}

async function startReader(client: string, topic: string, onValue: (value: string) => void): Promise<Reader> {
  const groupId = `bench-latency-${client}-${Date.now()}`;
  if (client === "kafkajs") {
    const kafka = new Kafka({ clientId: "bench-latency", brokers: BROKERS, logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 50 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => onValue(message.value!.toString()) });
    return { close: () => consumer.disconnect() };
  }
  const consumer = new Consumer({
    groupId,
    clientId: "bench-latency",
    bootstrapBrokers: BROKERS,
    deserializers: stringDeserializers,
    maxWaitTime: 50,
  });
  const stream = await consumer.consume({ topics: [topic], mode: "earliest", autocommit: 1000 });
  stream.on("data", (m) => onValue(m.value as string));
  return {
    close: async () => {
      await stream.close();
      await consumer.close();
    },
  };
}

export async function main() {
  const consumerClient = process.argv.find((a) => a.startsWith("--consumer="))?.split("=")[1] ?? "platformatic";
  const sustainSeconds = arg("sustain-seconds", 8);
  const phaseSeconds = arg("phase-seconds", 12);
  const writers = arg("writers", 16);
  const topic = uniqueTopic("bench.latency");
  const Ping = defineEvent({
    type: "ping",
    schema: Schema.Struct({ seq: Schema.Number, note: Schema.String }),
    route: { topic, key: (e) => `k-${e.seq % 1000}` },
  });
  const note = "x".repeat(1000);
  const database = await createTestDatabase("el_bench_latency");
  const pool = new pg.Pool({ connectionString: database.url, max: writers + 2 });
  pool.on("error", () => undefined);
  const db = new Kysely({ dialect: new PostgresDialect({ pool }) });
  const store = createEventStore({ notify: true });
  const committedAt = new Map<number, number>();
  const receivedAt = new Map<number, number>();
  let received = 0;
  await migrateToLatest(db);
  await createTopics([{ topic, partitions: 6 }]);
  const client = (process.argv.find((a) => a.startsWith("--client="))?.split("=")[1] ?? "kafkajs") as KafkaClient;
  const mode = (process.argv.find((a) => a.startsWith("--mode="))?.split("=")[1] ?? "idempotent") as KafkaProducerMode;
  const relay = createRelay({
    connectionString: database.url,
    kafka: { brokers: BROKERS, client, mode },
    topics: [topic],
  });
  // The relay's own view: insert -> Kafka ack, per message; splits the end-to-end figure in two.
  let relayLatencies: number[] = [];
  relay.on("batch:published", (e) => {
    for (const ms of e.commitToPublishMs) relayLatencies.push(ms);
  });
  let reader: Reader | undefined;
  let seq = 0;
  const write = async () => {
    const n = seq++;
    await db.transaction().execute((trx) => store.enqueue(trx, Ping, { seq: n, note }));
    committedAt.set(n, performance.now());
  };
  try {
    reader = await startReader(consumerClient, topic, (value) => {
      const now = performance.now();
      const n = (JSON.parse(value) as { seq: number }).seq;
      if (!receivedAt.has(n)) {
        receivedAt.set(n, now);
        received++;
      }
    });
    await relay.start();
    // Warm-up: the consumer's group join and the relay's leadership.
    await write();
    while (received < 1) await new Promise((r) => setTimeout(r, 20));

    progress(`sustained rate: ${writers} closed-loop writers for ${sustainSeconds} s`);
    const startReceived = received;
    const t0 = performance.now();
    const deadline = t0 + sustainSeconds * 1000;
    await Promise.all(
      Array.from({ length: writers }, async () => {
        while (performance.now() < deadline) await write();
      }),
    );
    const writeRate = (seq - 1) / ((performance.now() - t0) / 1000);
    const receiveRate = (received - startReceived) / ((performance.now() - t0) / 1000);
    const sustained = Math.min(writeRate, receiveRate);
    progress(
      `written ${writeRate.toFixed(0)}/s, received ${receiveRate.toFixed(0)}/s: sustained end-to-end ${sustained.toFixed(0)}/s`,
    );
    while (received < seq) await new Promise((r) => setTimeout(r, 50));

    const phases: Array<{ name: string; share: number; rate: number; latencies: number[]; relayPart: number[] }> = [];
    for (const share of [0.1, 0.5]) {
      const rate = sustained * share;
      const first = seq;
      const count = Math.max(20, Math.round(rate * phaseSeconds));
      progress(
        `open loop at ${(share * 100).toFixed(0)}% = ${rate.toFixed(0)} commits/s for ${phaseSeconds} s (${count} commits)`,
      );
      const start = performance.now();
      relayLatencies = [];
      const inflight: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        const due = start + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        inflight.push(write());
        if (i > 0 && i % Math.round(count / 4) === 0) progress(`  ${i}/${count} committed`);
      }
      await Promise.all(inflight);
      const last = seq;
      const waitUntil = performance.now() + 30_000;
      while (received < last && performance.now() < waitUntil) await new Promise((r) => setTimeout(r, 20));
      const latencies: number[] = [];
      for (let n = first; n < last; n++) {
        const c = committedAt.get(n);
        const r = receivedAt.get(n);
        if (c !== undefined && r !== undefined) latencies.push(Math.max(0, r - c));
      }
      latencies.sort((a, b) => a - b);
      const relayPart = [...relayLatencies].sort((a, b) => a - b);
      phases.push({ name: `${(share * 100).toFixed(0)}% (${rate.toFixed(0)}/s)`, share, rate, latencies, relayPart });
      progress(
        `  relay part (insert -> Kafka ack): p50 ${quantile(relayPart, 0.5).toFixed(1)} ms, p99 ${quantile(relayPart, 0.99).toFixed(1)} ms`,
      );
      progress(
        `  p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms, max ${latencies.at(-1)?.toFixed(1)} ms, lost ${last - first - latencies.length}`,
      );
    }
    const chart = writeLineChart(
      `latency-${client}-${mode}-${consumerClient}-consumer.svg`,
      `Commit -> receipt latency (CDF): relay ${client}/${mode}, ${consumerClient} consumer`,
      { x: "latency (ms, log scale)", y: "fraction of events", logX: true },
      phases.map((p) => ({
        name: `open loop at ${p.name}`,
        points: p.latencies.map((v, i) => [Math.max(v, 0.1), (i + 1) / p.latencies.length] as const),
      })),
      [
        { x: 10, label: "p50 target 10 ms" },
        { x: 50, label: "p99 target 50 ms" },
      ],
    );
    progress(`chart: ${chart}`);
    const at50 = phases.find((p) => p.share === 0.5)!;
    const r = (x: number) => Number(x.toFixed(2));
    return {
      benchmark: "latency",
      consumer: consumerClient,
      relayClient: client,
      relayMode: mode,
      sustainedEndToEndPerSecond: Math.round(sustained),
      phases: phases.map((p) => ({
        rateShare: p.share,
        commitsPerSecond: Math.round(p.rate),
        events: p.latencies.length,
        p50Ms: r(quantile(p.latencies, 0.5)),
        p99Ms: r(quantile(p.latencies, 0.99)),
        maxMs: r(p.latencies.at(-1) ?? Number.NaN),
        relayInsertToAckP50Ms: r(quantile(p.relayPart, 0.5)),
        relayInsertToAckP99Ms: r(quantile(p.relayPart, 0.99)),
      })),
      targetsAt50Percent: {
        p50Ms: { target: 10, measured: r(quantile(at50.latencies, 0.5)), met: quantile(at50.latencies, 0.5) <= 10 },
        p99Ms: { target: 50, measured: r(quantile(at50.latencies, 0.99)), met: quantile(at50.latencies, 0.99) <= 50 },
      },
      chart,
    };
  } finally {
    await relay.stop().catch(() => undefined);
    await reader?.close().catch(() => undefined);
    await db.destroy();
    await deleteTopics([topic]);
    await database.drop();
  }
}
