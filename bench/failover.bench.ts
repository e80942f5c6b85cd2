// Failover: three relay processes (the eventlane-relay bin) share one shard while a writer commits
// ~200 events/s. Trials of SIGKILL, SIGSTOP and a blackholed database connection (through a TCP
// fault proxy) hit the current leader; each measures the time from the fault to the successor's
// first published row (its epoch's earliest published_at). At the end every event is checked on
// Kafka: lost and duplicated counts. Each relay's connections go through a proxy of its own.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Schema } from "effect";
import { createEventStore, defineEvent, migrateToLatest } from "@eventlane/core";
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  type FaultProxy,
  startFaultProxy,
  uniqueTopic,
  waitFor,
} from "@eventlane/test-kit";
import { Kafka, logLevel } from "kafkajs";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { progress, quantile, writeBarChart } from "./lib/chart.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BIN = path.join(root, "packages/relay-server/src/eventlane-relay.ts");
const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const LEASE_MS = arg("lease", 3000);
const flag = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback;
const CLIENT = flag("client", "kafkajs");
const MODE = flag("mode", "idempotent");

type Fault = "SIGKILL" | "SIGSTOP" | "blackhole";

interface Instance {
  readonly id: string;
  readonly proxy: FaultProxy;
  child: ChildProcess;
  stopped: boolean;
}

export async function main() {
  const trials = arg("trials", 10);
  const rate = arg("rate", 200);
  const topic = uniqueTopic("bench.failover");
  const Ev = defineEvent({
    type: "tick",
    schema: Schema.Struct({ seq: Schema.Number }),
    route: { topic, key: (e) => `k-${e.seq % 100}` },
  });
  const database = await createTestDatabase("el_bench_failover");
  const pool = new pg.Pool({ connectionString: database.url, max: 6 });
  pool.on("error", () => undefined);
  const db = new Kysely({ dialect: new PostgresDialect({ pool }) });
  const store = createEventStore();
  await migrateToLatest(db);
  await createTopics([{ topic, partitions: 3 }]);

  const spawnRelay = (inst: { id: string; proxy: FaultProxy }) =>
    spawn(process.execPath, ["--conditions=eventlane-source", "--no-warnings", BIN], {
      env: {
        ...process.env,
        EVENTLANE_DATABASE_URL: database.urlVia("127.0.0.1", inst.proxy.port),
        EVENTLANE_KAFKA_BROKERS: "127.0.0.1:9092",
        EVENTLANE_KAFKA_CLIENT: CLIENT,
        EVENTLANE_KAFKA_MODE: MODE,
        EVENTLANE_RELAY_TOPICS: topic,
        EVENTLANE_RELAY_INSTANCE_ID: inst.id,
        EVENTLANE_RELAY_LEASE_MS: String(LEASE_MS),
        EVENTLANE_RELAY_HEARTBEAT_INTERVAL_MS: String(Math.round(LEASE_MS / 6)),
        EVENTLANE_RELAY_BATCH_SIZE: "100",
        EVENTLANE_HTTP_PORT: "0",
        EVENTLANE_HTTP_HOST: "127.0.0.1",
        EVENTLANE_LOG_LEVEL: process.env.BENCH_RELAY_LOG_LEVEL ?? "error",
      },
      stdio: ["ignore", process.env.BENCH_RELAY_LOG_LEVEL ? "inherit" : "ignore", "inherit"],
    });

  const instances: Instance[] = [];
  for (const id of ["relay-a", "relay-b", "relay-c"]) {
    const proxy = await startFaultProxy({ host: "127.0.0.1", port: 5432 });
    const inst: Instance = { id, proxy, child: spawnRelay({ id, proxy }), stopped: false };
    instances.push(inst);
  }

  // Read everything back.
  const kafka = new Kafka({ clientId: "bench-failover", brokers: ["127.0.0.1:9092"], logLevel: logLevel.NOTHING });
  // read_committed (kafkajs's default): in transactional mode aborted sends are not counted.
  const consumer = kafka.consumer({ groupId: `bench-failover-${Date.now()}`, maxWaitTimeInMs: 100 });
  const seen = new Map<number, number>();
  let received = 0;
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const seq = (JSON.parse(message.value!.toString()) as { seq: number }).seq;
      seen.set(seq, (seen.get(seq) ?? 0) + 1);
      received++;
    },
  });

  // The writer: ~rate commits per second until stopped.
  let seq = 0;
  let writing = true;
  const writer = (async () => {
    const start = performance.now();
    while (writing) {
      const due = start + (seq * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await store.enqueue(db, Ev, { seq: seq++ }).catch(() => {
        seq--;
      });
    }
  })();

  const leader = async () => {
    const r = await sql<{
      owner: string | null;
      epoch: string;
    }>`SELECT owner, epoch::text AS epoch FROM eventlane.relay_shards WHERE shard = 0`.execute(db);
    return { owner: r.rows[0]?.owner ?? null, epoch: Number(r.rows[0]?.epoch ?? 0) };
  };
  const firstPublishAfter = async (epoch: number) => {
    const r = await sql<{ at: Date | null; epoch: string | null }>`
      SELECT min(published_at) AS at, min(published_epoch)::text AS epoch FROM eventlane.outbox WHERE published_epoch > ${epoch}`.execute(
      db,
    );
    return r.rows[0]?.at ?? null;
  };

  const results: Array<{
    fault: Fault;
    trial: number;
    takeoverMs: number;
    duplicates: number;
    from: string;
    to: string;
  }> = [];
  try {
    await waitFor(
      "a first leader",
      async () => (await leader()).owner !== null && (await firstPublishAfter(0)) !== null,
      30_000,
    );
    const faults = (process.argv
      .find((a) => a.startsWith("--faults="))
      ?.split("=")[1]
      ?.split(",") ?? ["SIGKILL", "SIGSTOP", "blackhole"]) as Fault[];
    for (const fault of faults) {
      for (let trial = 1; trial <= trials; trial++) {
        const before = await leader();
        const inst = instances.find((i) => i.id === before.owner);
        if (inst === undefined) throw new Error(`no instance for leader ${before.owner}`);
        const dupBefore = received - seen.size;
        const tFault = Date.now();
        if (fault === "SIGKILL") inst.child.kill("SIGKILL");
        else if (fault === "SIGSTOP") inst.child.kill("SIGSTOP");
        else inst.proxy.blackhole();
        let at: Date | null = null;
        await waitFor(
          `a successor after ${fault}`,
          async () => {
            at = await firstPublishAfter(before.epoch);
            return at !== null;
          },
          30_000,
          20,
        );
        const takeoverMs = (at as unknown as Date).getTime() - tFault;
        const after = await leader();
        // Restore the instance as a standby.
        if (fault === "SIGKILL") {
          inst.child = spawnRelay(inst);
        } else if (fault === "SIGSTOP") {
          inst.child.kill("SIGCONT");
        } else {
          inst.proxy.heal();
        }
        await new Promise((r) => setTimeout(r, 1500));
        const duplicates = received - seen.size - dupBefore;
        results.push({ fault, trial, takeoverMs, duplicates, from: before.owner ?? "?", to: after.owner ?? "?" });
        progress(`${fault} #${trial}: ${before.owner} -> ${after.owner} in ${takeoverMs} ms, ${duplicates} duplicates`);
      }
    }
    writing = false;
    await writer;
    progress(`writer stopped at ${seq} events; waiting for the outbox to drain`);
    await waitFor("every event on Kafka", () => seen.size >= seq, 60_000, 100);
  } finally {
    writing = false;
    for (const i of instances) {
      i.child.kill("SIGCONT");
      i.child.kill("SIGKILL");
      await i.proxy.close();
    }
    await consumer.disconnect().catch(() => undefined);
  }
  let lost = 0;
  for (let n = 0; n < seq; n++) if (!seen.has(n)) lost++;
  const duplicates = received - seen.size;
  await db.destroy();
  await deleteTopics([topic]);
  await database.drop();

  const byFault = (["SIGKILL", "SIGSTOP", "blackhole"] as const).map((fault) => {
    const rs = results.filter((r) => r.fault === fault);
    const times = rs.map((r) => r.takeoverMs).sort((a, b) => a - b);
    return {
      fault,
      trials: rs.length,
      takeoverMs: { min: times[0], p50: quantile(times, 0.5), max: times.at(-1) },
      duplicates: rs.reduce((a, r) => a + r.duplicates, 0),
      duplicatesPerTrialMax: Math.max(...rs.map((r) => r.duplicates)),
    };
  });
  const chart = writeBarChart(
    `failover-${CLIENT}-${MODE}.svg`,
    `Failover (${CLIENT}, ${MODE}): fault -> successor's first publish, lease ${LEASE_MS} ms, ${trials} trials each`,
    "milliseconds",
    byFault.map((f) => ({
      label: f.fault,
      bars: [
        { name: "min", value: f.takeoverMs.min ?? 0 },
        { name: "median", value: f.takeoverMs.p50 ?? 0 },
        { name: "max", value: f.takeoverMs.max ?? 0 },
      ],
    })),
    5000,
  );
  progress(`chart: ${chart}`);
  const worst = Math.max(...results.map((r) => r.takeoverMs));
  return {
    benchmark: "failover",
    client: CLIENT,
    mode: MODE,
    leaseMs: LEASE_MS,
    writeRatePerSecond: rate,
    events: seq,
    lost,
    duplicates,
    byFault,
    target: { worstTakeoverMs: 5000, measuredWorstMs: worst, lost, met: worst <= 5000 && lost === 0 },
    trials: results,
    chart,
  };
}
