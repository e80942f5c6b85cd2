// Backlog: drain 1M pending outbox rows (1 KiB payloads, 10k keys) through one relay process (the
// eventlane-relay bin); rows per second and the relay process's peak memory (VmHWM), with the
// pending rows and the relay's resident memory sampled over time and charted.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { migrateToLatest } from "@eventlane/core";
import { createTestDatabase, createTopics, deleteTopics, uniqueTopic } from "@eventlane/test-kit";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { progress, writeLineChart } from "./lib/chart.ts";
import { prefillOutbox } from "./lib/prefill.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BIN = path.join(root, "packages/relay-server/src/eventlane-relay.ts");
const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);

function memoryKb(pid: number): { rss: number; hwm: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { rss: field("VmRSS"), hwm: field("VmHWM") };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

export async function main() {
  const rows = arg("rows", 1_000_000);
  const batchSize = arg("batch", 500);
  const topic = uniqueTopic("bench.backlog");
  const database = await createTestDatabase("el_bench_backlog");
  const pool = new pg.Pool({ connectionString: database.url, max: 3 });
  pool.on("error", () => undefined);
  const db = new Kysely({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrateToLatest(db);
    await createTopics([{ topic, partitions: 6 }]);
    progress(`prefilling ${rows} rows`);
    await prefillOutbox(db, { rows, keys: 10_000, topic, note: randomBytes(496).toString("hex"), chunk: 50_000 });
    const size = await sql<{
      s: string;
    }>`SELECT pg_size_pretty(pg_total_relation_size('eventlane.outbox')) AS s`.execute(db);
    progress(`outbox is ${size.rows[0]?.s}; starting the relay process`);
    const child = spawn(process.execPath, ["--conditions=eventlane-source", "--no-warnings", BIN], {
      env: {
        ...process.env,
        EVENTLANE_DATABASE_URL: database.url,
        EVENTLANE_KAFKA_BROKERS: "127.0.0.1:9092",
        EVENTLANE_RELAY_TOPICS: topic,
        EVENTLANE_RELAY_BATCH_SIZE: String(batchSize),
        EVENTLANE_RELAY_RETENTION_INTERVAL_MS: "3600000",
        EVENTLANE_HTTP_PORT: "0",
        EVENTLANE_HTTP_HOST: "127.0.0.1",
        EVENTLANE_LOG_LEVEL: "error",
      },
      stdio: ["ignore", "ignore", "inherit"],
    });
    const samples: Array<{ t: number; pending: number; rssMb: number }> = [];
    const t0 = performance.now();
    let firstPublishAt: number | undefined;
    let peakKb = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 2000));
      const r = await sql<{ n: string }>`SELECT count(*) AS n FROM eventlane.outbox WHERE status = 'pending'`.execute(
        db,
      );
      const pending = Number(r.rows[0]?.n);
      const mem = memoryKb(child.pid!);
      peakKb = Math.max(peakKb, mem.hwm);
      const t = (performance.now() - t0) / 1000;
      if (firstPublishAt === undefined && pending < rows) firstPublishAt = t;
      samples.push({ t, pending, rssMb: mem.rss / 1024 });
      progress(
        `t=${t.toFixed(0)} s: ${pending} pending, relay RSS ${(mem.rss / 1024).toFixed(0)} MB (peak ${(peakKb / 1024).toFixed(0)} MB)`,
      );
      if (pending === 0) break;
      if (t > 900) throw new Error("the backlog did not drain in 15 minutes");
    }
    const drainedAt = samples.at(-1)!.t;
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    // Rate over the draining part only (from the first sample that shows progress).
    const start = samples.find((s) => s.pending < rows) ?? samples[0]!;
    const startT = start.t - 2;
    const rowsPerSecond = rows / (drainedAt - Math.max(0, startT));
    const chart1 = writeLineChart(
      "backlog-pending.svg",
      `Draining ${rows} pending rows through one relay`,
      { x: "seconds", y: "pending rows (thousands)" },
      [{ name: "pending rows (thousands)", points: samples.map((s) => [s.t, s.pending / 1000] as const) }],
    );
    const chart2 = writeLineChart(
      "backlog-memory.svg",
      "Relay process resident memory while draining",
      { x: "seconds", y: "RSS (MB)" },
      [{ name: "relay RSS (MB)", points: samples.map((s) => [s.t, s.rssMb] as const) }],
    );
    progress(`charts: ${chart1}, ${chart2}`);
    return {
      benchmark: "backlog",
      rows,
      batchSize,
      outboxSize: size.rows[0]?.s,
      drainSeconds: Number((drainedAt - Math.max(0, startT)).toFixed(1)),
      rowsPerSecond: Math.round(rowsPerSecond),
      relayPeakMemoryMb: Number((peakKb / 1024).toFixed(1)),
      samples: samples.length,
      charts: [chart1, chart2],
    };
  } finally {
    await db.destroy();
    await deleteTopics([topic]);
    await database.drop();
  }
}
