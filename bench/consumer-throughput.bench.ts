// Consumer throughput against the bare consumer of the same Kafka client, in the same run, for each
// client (kafkajs, @platformatic/kafka): a topic is pre-filled once (default 100k events of 1 KiB,
// 1,000 keys, 6 partitions, with the headers the relay sends), then each case reads it from the
// beginning with a fresh consumer group into a fresh database, and is timed from the group join
// until every row is in the table (count(*) polled every 100 ms):
//   (a) the Eventlane consumer, a per-record handler inserting one row per event;
//   (b) the bare consumer: the same one-row INSERT per event, one transaction per batch of
//       `batchSize`, offsets committed after each transaction;
//   (c) the Eventlane consumer with `handleBatch`, one multi-row INSERT per chunk;
//   (c-bare) the bare consumer doing the same multi-row INSERT per batch.
// Same partitionsConsumedConcurrently, pool size, batch size and table on both sides; each pair runs
// `--rounds` times back to back in alternating order (the cores are shared with other work) and the
// medians are reported, the ratio as the median of the rounds' ratios. Then the
// commit-to-applied latency: writers `enqueue` through a running relay into a consumer whose handler
// writes the event id, open-loop at 50% of case (a)'s rate (capped at 50% of what writers, relay and
// consumer sustain together); a commit is timestamped when COMMIT returns, the application at
// `event:applied` (after the chunk's transaction committed). Reports events/s, ratios, CPU shares of
// Node, PostgreSQL and the broker per case, and latency p50/p99 per client.
// Flags: --events=100000 --keys=1000 --batch=500 --concurrency=3 (partitionsConsumedConcurrently; the
// pool has 2 more connections) --client=kafkajs,platformatic --cases=a,b,c,c-bare --rounds=3
// --latency=0 (skip it) --writers=16 --sustain-seconds=6 --latency-seconds=12.
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createEventStore, defineEvent, Headers, migrateToLatest } from "@eventlane/core";
import {
  type ConsumerKafkaClient,
  ConsumerKafkaClients,
  createConsumer,
  migrateConsumerToLatest,
} from "@eventlane/consumer";
import { createRelay } from "@eventlane/relay";
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  testKafka,
  uniqueSuffix,
  uniqueTopic,
} from "@eventlane/test-kit";
import {
  Consumer as PlatformaticConsumer,
  type Message as PlatformaticMessage,
  stringDeserializers,
} from "@platformatic/kafka";
import { Schema } from "effect";
import { Kafka, type KafkaMessage, logLevel } from "kafkajs";
import { type Generated, Kysely, PostgresDialect, sql, type Transaction } from "kysely";
import pg from "pg";
import { progress, quantile, writeBarChart, writeLineChart } from "./lib/chart.ts";
import { type CpuSample, type CpuShare, cpuShare, sampleCpu } from "./lib/cpu.ts";

const BROKERS = ["127.0.0.1:9092"];
const EVENT_TYPE = "bench_event";
const RATIO_TARGET = 0.7;
const RATE_TARGET_A = 10_000;
const P99_TARGET_MS = 50;

/** The table every case writes: one row per applied event. */
interface BenchDb {
  bench_applied: { id: Generated<string>; event_id: string; key: string; n: number };
}
type BenchRow = Omit<BenchDb["bench_applied"], "id">;

const benchEvent = (topic: string, keys: number) =>
  defineEvent({
    type: EVENT_TYPE,
    schema: Schema.Struct({ n: Schema.Number, note: Schema.String }),
    route: { topic, key: (e) => `k-${e.n % keys}` },
  });

// The one statement of cases (a) and (b), and the one of (c) and (c-bare): both sides run these.
const insertOne = (trx: Transaction<BenchDb>, row: BenchRow) => trx.insertInto("bench_applied").values(row).execute();
const insertMany = (trx: Transaction<BenchDb>, rows: readonly BenchRow[]) =>
  trx
    .insertInto("bench_applied")
    .values([...rows])
    .execute();

interface Settings {
  readonly topic: string;
  readonly events: number;
  readonly keys: number;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly poolSize: number;
}

/** Fills the topic with a bare idempotent kafkajs producer (murmur2 partitioner, as the relay). */
async function prefillTopic(s: Settings, note: string): Promise<{ seconds: number; eventsPerSecond: number }> {
  const kafka = new Kafka({ clientId: "bench-prefill", brokers: BROKERS, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const t0 = performance.now();
  const chunk = 2_000;
  try {
    for (let start = 0; start < s.events; start += chunk) {
      const messages = [];
      for (let g = start; g < Math.min(s.events, start + chunk); g++) {
        messages.push({
          key: `k-${g % s.keys}`,
          value: JSON.stringify({ n: g, note }),
          headers: {
            [Headers.eventId]: randomUUID(),
            [Headers.eventType]: EVENT_TYPE,
            [Headers.schemaVersion]: "1",
            // Per key 1..n: event g is the (g / keys + 1)-th of key g % keys.
            [Headers.keySequence]: String(Math.floor(g / s.keys) + 1),
          },
        });
      }
      await producer.send({ topic: s.topic, acks: -1, messages });
      if ((start / chunk) % 10 === 9) progress(`prefill: ${start + chunk}/${s.events} events`);
    }
  } finally {
    await producer.disconnect();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds: Number(seconds.toFixed(1)), eventsPerSecond: Math.round(s.events / seconds) };
}

/** Deletes the (empty, stopped) consumer groups of a case; errors are ignored. */
async function deleteGroups(groupIds: readonly string[]): Promise<void> {
  const admin = testKafka().admin();
  await admin
    .connect()
    .then(() => admin.deleteGroups([...groupIds]))
    .catch(() => undefined);
  await admin.disconnect().catch(() => undefined);
}

/** A consumer of one case, started: `stop()` lets the transactions in flight finish and leaves the group. */
interface RunningConsumer {
  readonly groupId: string;
  stop(): Promise<void>;
  /** Set when background work failed: the case is then reported as failed. */
  failure(): unknown;
  details(): Record<string, unknown>;
}

type CaseName = "a" | "b" | "c" | "c-bare";
type Starter = (db: Kysely<BenchDb>, onJoined: () => void) => Promise<RunningConsumer>;

/** Case (a) or (c): the Eventlane consumer. */
function eventlaneStarter(s: Settings, client: ConsumerKafkaClient, batch: boolean): Starter {
  return async (db, onJoined) => {
    const BenchEvent = benchEvent(s.topic, s.keys);
    const groupId = `bench-consumer-${uniqueSuffix()}`;
    const common = {
      kafka: { brokers: BROKERS, client },
      db,
      groupId,
      events: [BenchEvent],
      batchSize: s.batchSize,
      partitionsConsumedConcurrently: s.concurrency,
    } as const;
    const consumer = batch
      ? createConsumer({
          ...common,
          handleBatch: (items, { trx }) =>
            insertMany(
              trx,
              items.map((i) => ({ event_id: i.context.eventId, key: i.context.key, n: i.event.data.n })),
            ).then(() => undefined),
        })
      : createConsumer({
          ...common,
          handlers: {
            [EVENT_TYPE]: async (event, { trx, eventId, key }) => {
              await insertOne(trx, { event_id: eventId, key, n: event.data.n });
            },
          },
        });
    let errors = 0;
    let lastError: unknown;
    consumer.on("partitions:assigned", onJoined);
    consumer.on("error", (e) => {
      errors++;
      lastError = e.error;
    });
    await consumer.start();
    onJoined();
    return {
      groupId,
      stop: () => consumer.stop(),
      failure: () => undefined,
      details: () => ({
        ...consumer.stats(),
        ...(errors > 0 ? { lastError: String((lastError as Error)?.message ?? lastError) } : {}),
      }),
    };
  };
}

const rowOfKafkaJs = (m: KafkaMessage): BenchRow => ({
  event_id: String(m.headers?.[Headers.eventId]),
  key: m.key!.toString(),
  n: (JSON.parse(m.value!.toString()) as { n: number }).n,
});

const rowOfPlatformatic = (m: PlatformaticMessage<string, string, string, string>): BenchRow => ({
  event_id: m.headers.get(Headers.eventId)!,
  key: m.key,
  n: (JSON.parse(m.value) as { n: number }).n,
});

/** One transaction per batch: the one-row INSERT per event (b), or one multi-row INSERT (c-bare). */
const applyBare = (db: Kysely<BenchDb>, rows: readonly BenchRow[], batch: boolean) =>
  db.transaction().execute(async (trx) => {
    if (batch) await insertMany(trx, rows);
    else for (const row of rows) await insertOne(trx, row);
  });

/** Case (b) or (c-bare) with kafkajs: eachBatch, auto-commit off, commitOffsets after each transaction. */
function bareKafkaJsStarter(s: Settings, batch: boolean): Starter {
  return async (db, onJoined) => {
    const kafka = new Kafka({ clientId: "bench-bare", brokers: BROKERS, logLevel: logLevel.NOTHING });
    const groupId = `bench-bare-${uniqueSuffix()}`;
    // The Eventlane consumer's defaults: 500 ms fetch wait, read_committed, 30 s session, 3 s heartbeat.
    const consumer = kafka.consumer({
      groupId,
      maxWaitTimeInMs: 500,
      allowAutoTopicCreation: false,
    });
    let failure: unknown;
    consumer.on(consumer.events.GROUP_JOIN, onJoined);
    consumer.on(consumer.events.CRASH, (e) => {
      failure = e.payload.error;
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [s.topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: s.concurrency,
      eachBatch: async ({ batch: b, resolveOffset, heartbeat, isRunning, isStale }) => {
        for (let i = 0; i < b.messages.length; i += s.batchSize) {
          if (!isRunning() || isStale()) return;
          const chunk = b.messages.slice(i, i + s.batchSize);
          await applyBare(db, chunk.map(rowOfKafkaJs), batch);
          const last = chunk[chunk.length - 1]!.offset;
          resolveOffset(last);
          await consumer.commitOffsets([{ topic: b.topic, partition: b.partition, offset: String(BigInt(last) + 1n) }]);
          await heartbeat();
        }
      },
    });
    return {
      groupId,
      stop: () => consumer.disconnect(),
      failure: () => failure,
      details: () => ({}),
    };
  };
}

/**
 * Case (b) or (c-bare) with @platformatic/kafka: one stream, autocommit off, its records queued per
 * partition; up to `concurrency` partitions are applied at once, each in batches of at most
 * `batchSize` (a batch takes what is queued, it never waits to fill), the last record's offset
 * committed after each transaction. The stream pauses while 4 batches per worker are queued.
 */
function barePlatformaticStarter(s: Settings, batch: boolean): Starter {
  return async (db, onJoined) => {
    type Msg = PlatformaticMessage<string, string, string, string>;
    const groupId = `bench-bare-${uniqueSuffix()}`;
    const consumer = new PlatformaticConsumer({
      groupId,
      clientId: "bench-bare",
      bootstrapBrokers: BROKERS,
      deserializers: stringDeserializers,
      maxWaitTime: 500,
      // Kafka's default max.partition.fetch.bytes, as the Eventlane adapter sets it.
      maxBytesPerPartition: 1_048_576,
      autocommit: false,
    });
    consumer.on("consumer:group:join", onJoined);
    const stream = await consumer.consume({
      topics: [s.topic],
      mode: "committed",
      fallbackMode: "earliest",
      autocommit: false,
      maxWaitTime: 500,
    });
    onJoined();
    const queues = new Map<number, Msg[]>();
    const busy = new Set<number>();
    const inflight = new Set<Promise<void>>();
    const highWater = 4 * s.batchSize * s.concurrency;
    let queued = 0;
    let failure: unknown;
    let stopping = false;
    const pump = () => {
      for (const [partition, queue] of queues) {
        if (stopping || busy.size >= s.concurrency) return;
        if (busy.has(partition) || queue.length === 0) continue;
        const take = queue.splice(0, s.batchSize);
        queued -= take.length;
        if (queued < highWater / 2 && stream.isPaused()) stream.resume();
        busy.add(partition);
        const run = (async () => {
          await applyBare(db, take.map(rowOfPlatformatic), batch);
          await take[take.length - 1]!.commit();
        })()
          .catch((error: unknown) => {
            failure ??= error;
          })
          .finally(() => {
            busy.delete(partition);
            inflight.delete(run);
            pump();
          });
        inflight.add(run);
      }
    };
    stream.on("data", (m: Msg) => {
      let queue = queues.get(m.partition);
      if (queue === undefined) {
        queue = [];
        queues.set(m.partition, queue);
      }
      queue.push(m);
      if (++queued >= highWater) stream.pause();
      pump();
    });
    stream.on("error", (error) => {
      failure ??= error;
    });
    return {
      groupId,
      stop: async () => {
        stopping = true;
        await Promise.all(inflight);
        await stream.close();
        await consumer.close();
      },
      failure: () => failure,
      details: () => ({}),
    };
  };
}

const median = (xs: readonly number[]): number | null => {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** The CPU shares over all rounds of a case: their CPU milliseconds over their wall time together. */
function mergeCpu(runs: readonly CaseRun[]): CaseCpu | null {
  const cpus = runs.flatMap((r) => (r.cpu === null ? [] : [r.cpu]));
  if (cpus.length === 0) return null;
  const sum = (f: (c: CaseCpu) => number) => cpus.reduce((a, c) => a + f(c), 0);
  const wallMs = sum((c) => c.wallMs);
  const capacity = wallMs * os.cpus().length;
  const r = (x: number) => Number(x.toFixed(3));
  const nodeMs = sum((c) => c.nodeMs);
  const postgresMs = sum((c) => c.postgresMs);
  const brokerMs = sum((c) => c.brokerMs);
  // Weighted by wall time, as the shares of one long run would be.
  const weighted = (f: (c: CaseCpu) => number) => r(sum((c) => f(c) * c.wallMs) / wallMs);
  return {
    wallMs,
    nodeMs,
    postgresMs,
    brokerMs,
    nodeShare: r(nodeMs / capacity),
    postgresShare: r(postgresMs / capacity),
    brokerShare: r(brokerMs / capacity),
    idleOrOtherShare: r(Math.max(0, 1 - (nodeMs + postgresMs + brokerMs) / capacity)),
    machineBusyShare: weighted((c) => c.machineBusyShare),
    otherProcessesShare: weighted((c) => c.otherProcessesShare),
  };
}

interface CaseRun {
  /** null when the case could not run (the client's adapter is missing). */
  readonly eventsPerSecond: number | null;
  readonly seconds: number | null;
  /** From start() to the group join (not timed). */
  readonly joinMs: number | null;
  readonly cpu: CaseCpu | null;
  readonly details: Record<string, unknown>;
  readonly unavailable?: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Busy and total jiffies of the whole machine (/proc/stat): the cores are shared with other work. */
function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3]! - cpu[4]!, total };
}

/** The CPU shares of `cpuShare`, plus how busy the whole machine was and the share of other processes. */
interface CaseCpu extends CpuShare {
  readonly machineBusyShare: number;
  readonly otherProcessesShare: number;
}

function caseCpu(from: CpuSample, fromTicks: ReturnType<typeof machineTicks>, to: CpuSample): CaseCpu {
  const share = cpuShare(from, to, os.cpus().length);
  const t = machineTicks();
  const busy = (t.busy - fromTicks.busy) / (t.total - fromTicks.total || 1);
  const other = Math.max(0, busy - share.nodeShare - share.postgresShare - share.brokerShare);
  return { ...share, machineBusyShare: Number(busy.toFixed(3)), otherProcessesShare: Number(other.toFixed(3)) };
}

/** Runs one case on a fresh database with a fresh group: timed from the group join to the last row. */
async function runCase(name: string, s: Settings, start: Starter): Promise<CaseRun> {
  const database = await createTestDatabase("el_bench_consumer");
  const pool = new pg.Pool({ connectionString: database.url, max: s.poolSize });
  pool.on("error", () => undefined);
  const db = new Kysely<BenchDb>({ dialect: new PostgresDialect({ pool }) });
  // The row count runs on a connection of its own, outside the consumer's pool.
  const counter = new pg.Client({ connectionString: database.url });
  let running: RunningConsumer | undefined;
  try {
    await counter.connect();
    await migrateConsumerToLatest(db, { schema: "eventlane_consumer" });
    await sql`CREATE TABLE bench_applied (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id text NOT NULL, key text NOT NULL, n integer NOT NULL)`.execute(
      db,
    );
    let joinedAt: number | undefined;
    let before: CpuSample | undefined;
    let beforeTicks = machineTicks();
    const onJoined = () => {
      if (joinedAt !== undefined) return;
      beforeTicks = machineTicks();
      before = sampleCpu();
      joinedAt = before.at;
    };
    const startedAt = performance.now();
    try {
      running = await start(db, onJoined);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === "ERR_MODULE_NOT_FOUND") {
        const message = (error as Error).message.split("\n")[0] ?? String(error);
        progress(`${name}: cannot run: ${message}`);
        return { eventsPerSecond: null, seconds: null, joinMs: null, cpu: null, details: {}, unavailable: message };
      }
      throw error;
    }
    const deadline = performance.now() + 300_000;
    let lastReport = performance.now();
    let rows = 0;
    for (;;) {
      rows = Number((await counter.query<{ n: string }>("SELECT count(*) AS n FROM bench_applied")).rows[0]?.n);
      if (rows >= s.events) break;
      const failure = running.failure();
      if (failure !== undefined) throw new Error(`${name}: the consumer failed`, { cause: failure });
      if (performance.now() > deadline) throw new Error(`${name}: ${rows}/${s.events} rows after 5 minutes`);
      if (performance.now() - lastReport > 3_000) {
        lastReport = performance.now();
        progress(`  ${name}: ${rows}/${s.events} rows`);
      }
      await sleep(100);
    }
    const after = sampleCpu();
    if (joinedAt === undefined || before === undefined) throw new Error(`${name}: finished without a group join`);
    const stopping = running;
    running = undefined;
    await stopping.stop();
    await deleteGroups([stopping.groupId]);
    const seconds = (after.at - joinedAt) / 1000;
    return {
      eventsPerSecond: Math.round(s.events / seconds),
      seconds: Number(seconds.toFixed(2)),
      joinMs: Math.round(joinedAt - startedAt),
      cpu: caseCpu(before, beforeTicks, after),
      details: { rows, ...stopping.details() },
    };
  } finally {
    if (running !== undefined) {
      await running.stop().catch(() => undefined);
      await deleteGroups([running.groupId]);
    }
    await counter.end().catch(() => undefined);
    await db.destroy();
    await database.drop();
  }
}

interface LatencyRun {
  readonly client: ConsumerKafkaClient;
  readonly relayClient: ConsumerKafkaClient;
  readonly sustainedEndToEndPerSecond: number;
  readonly caseARate: number | null;
  readonly commitsPerSecond: number;
  readonly rateLimitedBy: "50% of case (a)" | "50% of the end-to-end sustained rate";
  readonly events: number;
  readonly lost: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** The relay's part: the outbox row's created_at -> Kafka ack (`batch:published`). */
  readonly relayInsertToAckP50Ms: number;
  readonly relayInsertToAckP99Ms: number;
  /** Commit -> the handler runs (relay, Kafka fetch, decoding, the chunk's watermark lock, earlier records of the chunk). */
  readonly commitToHandlerP50Ms: number;
  readonly commitToHandlerP99Ms: number;
  /** The handler runs -> `event:applied` (the rest of the chunk, the watermark update, COMMIT). */
  readonly handlerToAppliedP50Ms: number;
  readonly handlerToAppliedP99Ms: number;
  /** This process's event-loop delay during the open loop: writers, relay and consumer share it. */
  readonly eventLoopDelayP99Ms: number;
  /** CPU shares during the open loop. */
  readonly cpu: CaseCpu;
  readonly latencies: readonly number[];
}

/**
 * Commit-to-applied latency through writer, relay and Eventlane consumer. First a closed-loop phase
 * (`writers` writers) measures what the three sustain together; then commits are scheduled open-loop
 * at min(50% of case (a), 50% of that).
 */
async function measureLatency(
  client: ConsumerKafkaClient,
  caseARate: number | null,
  s: Omit<Settings, "topic" | "events">,
  o: { writers: number; sustainSeconds: number; phaseSeconds: number; note: string },
): Promise<LatencyRun> {
  const topic = uniqueTopic("bench.consumer.latency");
  const BenchEvent = benchEvent(topic, s.keys);
  const database = await createTestDatabase("el_bench_consumer_latency");
  const writerPool = new pg.Pool({ connectionString: database.url, max: o.writers + 2 });
  writerPool.on("error", () => undefined);
  const writerDb = new Kysely<BenchDb>({ dialect: new PostgresDialect({ pool: writerPool }) });
  const consumerPool = new pg.Pool({ connectionString: database.url, max: s.poolSize });
  consumerPool.on("error", () => undefined);
  const consumerDb = new Kysely<BenchDb>({ dialect: new PostgresDialect({ pool: consumerPool }) });
  const store = createEventStore({ notify: true });
  const committedAt = new Map<string, number>();
  const appliedAt = new Map<string, number>();
  const handledAt = new Map<string, number>();
  const relay = createRelay({ connectionString: database.url, kafka: { brokers: BROKERS, client }, topics: [topic] });
  let relayLatencies: number[] = [];
  relay.on("batch:published", (e) => {
    for (const ms of e.commitToPublishMs) relayLatencies.push(ms);
  });
  const groupId = `bench-latency-${uniqueSuffix()}`;
  const consumer = createConsumer({
    kafka: { brokers: BROKERS, client },
    db: consumerDb,
    groupId,
    events: [BenchEvent],
    batchSize: s.batchSize,
    partitionsConsumedConcurrently: s.concurrency,
    handlers: {
      [EVENT_TYPE]: async (event, { trx, eventId, key }) => {
        handledAt.set(eventId, performance.now());
        await insertOne(trx, { event_id: eventId, key, n: event.data.n });
      },
    },
  });
  // Fires after the chunk's transaction committed: the event's effect is visible from here on.
  consumer.on("event:applied", (e) => {
    if (e.eventId !== null) appliedAt.set(e.eventId, performance.now());
  });
  let seq = 0;
  const write = async () => {
    const n = seq++;
    const { eventId } = await writerDb
      .transaction()
      .execute((trx) => store.enqueue(trx, BenchEvent, { n, note: o.note }));
    committedAt.set(eventId, performance.now());
  };
  const waitApplied = async (count: number, timeoutMs: number) => {
    const until = performance.now() + timeoutMs;
    while (appliedAt.size < count && performance.now() < until) await sleep(20);
  };
  try {
    await migrateToLatest(writerDb);
    await migrateConsumerToLatest(consumerDb, { schema: "eventlane_consumer" });
    await sql`CREATE TABLE bench_applied (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id text NOT NULL, key text NOT NULL, n integer NOT NULL)`.execute(
      consumerDb,
    );
    await createTopics([{ topic, partitions: 6 }]);
    await consumer.start();
    await relay.start();
    // Warm-up: the relay's leadership and the first chunk.
    await write();
    await waitApplied(1, 30_000);
    if (appliedAt.size < 1) throw new Error(`latency ${client}: the first event was not applied in 30 s`);

    progress(`latency ${client}: ${o.writers} closed-loop writers for ${o.sustainSeconds} s`);
    const startApplied = appliedAt.size;
    const startSeq = seq;
    const t0 = performance.now();
    const deadline = t0 + o.sustainSeconds * 1000;
    await Promise.all(
      Array.from({ length: o.writers }, async () => {
        while (performance.now() < deadline) await write();
      }),
    );
    const elapsed = (performance.now() - t0) / 1000;
    const writeRate = (seq - startSeq) / elapsed;
    const applyRate = (appliedAt.size - startApplied) / elapsed;
    const sustained = Math.min(writeRate, applyRate);
    progress(
      `latency ${client}: written ${writeRate.toFixed(0)}/s, applied ${applyRate.toFixed(0)}/s: sustained ${sustained.toFixed(0)}/s`,
    );
    await waitApplied(seq, 60_000);

    const half = caseARate === null ? Number.POSITIVE_INFINITY : caseARate / 2;
    const rate = Math.min(half, sustained / 2);
    const first = seq;
    const count = Math.max(20, Math.round(rate * o.phaseSeconds));
    progress(`latency ${client}: open loop at ${rate.toFixed(0)} commits/s for ${o.phaseSeconds} s (${count} commits)`);
    const phaseIds: Promise<void>[] = [];
    const startedAt = performance.now();
    const ids = new Set(committedAt.keys());
    relayLatencies = [];
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const cpuTicks = machineTicks();
    const cpuBefore = sampleCpu();
    for (let i = 0; i < count; i++) {
      const wait = startedAt + (i * 1000) / rate - performance.now();
      if (wait > 1) await sleep(wait);
      phaseIds.push(write());
    }
    await Promise.all(phaseIds);
    await waitApplied(seq, 30_000);
    const cpu = caseCpu(cpuBefore, cpuTicks, sampleCpu());
    loop.disable();
    const latencies: number[] = [];
    const toHandler: number[] = [];
    const handlerToApplied: number[] = [];
    for (const [eventId, c] of committedAt) {
      if (ids.has(eventId)) continue;
      const a = appliedAt.get(eventId);
      const h = handledAt.get(eventId);
      if (a === undefined) continue;
      latencies.push(Math.max(0, a - c));
      if (h !== undefined) {
        toHandler.push(Math.max(0, h - c));
        handlerToApplied.push(a - h);
      }
    }
    for (const l of [latencies, toHandler, handlerToApplied]) l.sort((x, y) => x - y);
    const relayPart = relayLatencies.sort((x, y) => x - y);
    const r = (x: number) => Number(x.toFixed(2));
    const run: LatencyRun = {
      client,
      relayClient: client,
      sustainedEndToEndPerSecond: Math.round(sustained),
      caseARate,
      commitsPerSecond: Math.round(rate),
      rateLimitedBy: half <= sustained / 2 ? "50% of case (a)" : "50% of the end-to-end sustained rate",
      events: latencies.length,
      lost: seq - first - latencies.length,
      p50Ms: r(quantile(latencies, 0.5)),
      p99Ms: r(quantile(latencies, 0.99)),
      maxMs: r(latencies.at(-1) ?? Number.NaN),
      relayInsertToAckP50Ms: r(quantile(relayPart, 0.5)),
      relayInsertToAckP99Ms: r(quantile(relayPart, 0.99)),
      commitToHandlerP50Ms: r(quantile(toHandler, 0.5)),
      commitToHandlerP99Ms: r(quantile(toHandler, 0.99)),
      handlerToAppliedP50Ms: r(quantile(handlerToApplied, 0.5)),
      handlerToAppliedP99Ms: r(quantile(handlerToApplied, 0.99)),
      eventLoopDelayP99Ms: r(loop.percentile(99) / 1e6),
      cpu,
      latencies,
    };
    progress(
      `latency ${client}: commit -> applied p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, max ${run.maxMs} ms, lost ${run.lost}; ` +
        `relay (insert -> Kafka ack) p50 ${run.relayInsertToAckP50Ms} ms, p99 ${run.relayInsertToAckP99Ms} ms; ` +
        `commit -> handler p50 ${run.commitToHandlerP50Ms} ms, p99 ${run.commitToHandlerP99Ms} ms; ` +
        `handler -> applied p50 ${run.handlerToAppliedP50Ms} ms, p99 ${run.handlerToAppliedP99Ms} ms`,
    );
    return run;
  } finally {
    await relay.stop().catch(() => undefined);
    await consumer.stop().catch(() => undefined);
    await deleteGroups([groupId]);
    await writerDb.destroy();
    await consumerDb.destroy();
    await deleteTopics([topic]);
    await database.drop();
  }
}

function flag(args: readonly string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

export async function main(args: readonly string[]) {
  const num = (name: string, fallback: number) => Number(flag(args, name) ?? fallback);
  const events = num("events", 100_000);
  const keys = num("keys", 1_000);
  const batchSize = num("batch", 500);
  const concurrency = num("concurrency", 3);
  const latencyRuns = num("latency", 1) > 0;
  const rounds = num("rounds", 3);
  const clients = (flag(args, "client") ?? ConsumerKafkaClients.join(",")).split(",") as ConsumerKafkaClient[];
  for (const c of clients) {
    if (!ConsumerKafkaClients.includes(c)) throw new Error(`--client: ${c} is not one of ${ConsumerKafkaClients}`);
  }
  const cases = (flag(args, "cases") ?? "a,b,c,c-bare").split(",") as CaseName[];
  // 1 KiB values: {"n":<g>,"note":"<992 hex chars>"} is ~1,010 bytes of JSON.
  const note = randomBytes(496).toString("hex");
  const topic = uniqueTopic("bench.consumer");
  const s: Settings = { topic, events, keys, batchSize, concurrency, poolSize: concurrency + 2 };
  progress(
    `consumer-throughput: ${events} events, ${keys} keys, 6 partitions, batch ${batchSize}, ` +
      `partitionsConsumedConcurrently ${concurrency}, pool ${s.poolSize}, clients ${clients.join(", ")}`,
  );
  const results = [];
  const latency: LatencyRun[] = [];
  await createTopics([{ topic, partitions: 6 }]);
  try {
    const prefill = await prefillTopic(s, note);
    progress(`prefill: ${events} events in ${prefill.seconds} s (${prefill.eventsPerSecond}/s)`);
    for (const client of clients) {
      const bare = client === "kafkajs" ? bareKafkaJsStarter : barePlatformaticStarter;
      const run = async (c: CaseName, starter: Starter, round: number): Promise<CaseRun | null> => {
        if (!cases.includes(c)) return null;
        progress(`${client} (${c}) round ${round + 1}/${rounds}: fresh database, fresh group`);
        const r = await runCase(`${client} (${c})`, s, starter);
        if (r.eventsPerSecond !== null) {
          progress(
            `${client} (${c}): ${r.eventsPerSecond} events/s in ${r.seconds} s (join ${r.joinMs} ms); CPU node ${r.cpu?.nodeShare}, postgres ${r.cpu?.postgresShare}, broker ${r.cpu?.brokerShare}, other processes ${r.cpu?.otherProcessesShare}`,
          );
        }
        return r;
      };
      for (const [eventlaneCase, bareCase, batch] of [
        ["a", "b", false],
        ["c", "c-bare", true],
      ] as const) {
        if (!cases.includes(eventlaneCase) && !cases.includes(bareCase)) continue;
        // The cores are shared with other work whose load drifts: rounds run the two cases back to
        // back, in alternating order, and the ratio is the median of the rounds' ratios.
        const eventlaneRuns: CaseRun[] = [];
        const bareRuns: CaseRun[] = [];
        for (let round = 0; round < rounds; round++) {
          const order = round % 2 === 0 ? (["eventlane", "bare"] as const) : (["bare", "eventlane"] as const);
          for (const side of order) {
            if (side === "eventlane") {
              // Without an adapter for the client every round would fail the same way.
              if (eventlaneRuns[0]?.unavailable !== undefined) continue;
              const r = await run(eventlaneCase, eventlaneStarter(s, client, batch), round);
              if (r !== null) eventlaneRuns.push(r);
            } else {
              const r = await run(bareCase, bare(s, batch), round);
              if (r !== null) bareRuns.push(r);
            }
          }
        }
        const rates = (runs: readonly CaseRun[]) =>
          runs.flatMap((r) => (r.eventsPerSecond === null ? [] : [r.eventsPerSecond]));
        const whole = (x: number | null) => (x === null ? null : Math.round(x));
        const e = whole(median(rates(eventlaneRuns)));
        const b = whole(median(rates(bareRuns)));
        const paired = eventlaneRuns.flatMap((r, i) => {
          const bareRate = bareRuns[i]?.eventsPerSecond;
          return r.eventsPerSecond === null || bareRate == null ? [] : [r.eventsPerSecond / bareRate];
        });
        const ratio = paired.length === 0 ? null : Number(median(paired)!.toFixed(3));
        const unavailable = eventlaneRuns[0]?.unavailable;
        progress(`${client} (${eventlaneCase}) vs (${bareCase}): median ${e} vs ${b} events/s, ratio ${ratio}`);
        results.push({
          client,
          case: eventlaneCase,
          bareCase,
          handler: batch ? "handleBatch, one multi-row INSERT per chunk" : "per-record handler, one INSERT per event",
          eventsPerSecond: e,
          bareEventsPerSecond: b,
          ratio,
          ratioTarget: RATIO_TARGET,
          ratioMet: ratio === null ? null : ratio >= RATIO_TARGET,
          ...(eventlaneCase === "a" && e !== null ? { rateTarget: RATE_TARGET_A, rateMet: e >= RATE_TARGET_A } : {}),
          rounds: {
            eventsPerSecond: rates(eventlaneRuns),
            bareEventsPerSecond: rates(bareRuns),
            ratio: paired.map((x) => Number(x.toFixed(3))),
          },
          cpu: mergeCpu(eventlaneRuns),
          bareCpu: mergeCpu(bareRuns),
          eventlane: unavailable === undefined ? eventlaneRuns.map((r) => r.details) : { unavailable },
        });
      }
      if (latencyRuns) {
        const a = results.find((r) => r.client === client && r.case === "a")?.eventsPerSecond ?? null;
        try {
          latency.push(
            await measureLatency(client, a, s, {
              writers: num("writers", 16),
              sustainSeconds: num("sustain-seconds", 6),
              phaseSeconds: num("latency-seconds", 12),
              note,
            }),
          );
        } catch (error) {
          if ((error as { code?: unknown }).code !== "ERR_MODULE_NOT_FOUND") throw error;
          progress(`latency ${client}: cannot run: ${(error as Error).message.split("\n")[0]}`);
        }
      }
    }
  } finally {
    await deleteTopics([topic]);
  }
  const label = (c: string) => (c === "a" ? "(a) per record vs (b)" : "(c) handleBatch vs (c-bare)");
  const chart = writeBarChart(
    "consumer-throughput.svg",
    `Eventlane vs bare consumer: ${events} x 1 KiB, batch ${batchSize}, ${concurrency} partitions at once (dashed: target for (a))`,
    "events per second",
    results.map((r) => ({
      label: `${r.client}\n${label(r.case)}\nratio ${r.ratio ?? "n/a"}`,
      bars: [
        { name: "Eventlane consumer", value: r.eventsPerSecond ?? 0 },
        { name: "bare consumer", value: r.bareEventsPerSecond ?? 0 },
      ],
    })),
    RATE_TARGET_A,
  );
  progress(`chart: ${chart}`);
  const latencyChart =
    latency.length === 0
      ? null
      : writeLineChart(
          "consumer-latency.svg",
          "Commit -> applied latency (CDF), open loop at 50% load",
          { x: "latency (ms, log scale)", y: "fraction of events", logX: true },
          latency.map((l) => ({
            name: `${l.client} at ${l.commitsPerSecond}/s`,
            points: l.latencies.map((v, i) => [Math.max(v, 0.1), (i + 1) / l.latencies.length] as const),
          })),
          [{ x: P99_TARGET_MS, label: `p99 target ${P99_TARGET_MS} ms` }],
        );
  if (latencyChart !== null) progress(`chart: ${latencyChart}`);
  return {
    benchmark: "consumer-throughput",
    events,
    keys,
    partitions: 6,
    batchSize,
    partitionsConsumedConcurrently: concurrency,
    poolSize: s.poolSize,
    rounds,
    cores: os.cpus().length,
    results,
    latency: latency.map(({ latencies: _, ...l }) => ({
      ...l,
      p99TargetMs: P99_TARGET_MS,
      p99Met: l.p99Ms <= P99_TARGET_MS,
    })),
    charts: { throughput: chart, latency: latencyChart },
  };
}
