import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createEventStore, defineAggregate, defineEvent, type EventStore, migrateToLatest } from "@eventlane/core";
import { createTestDatabase, kafkaBrokers, type TestDatabase } from "@eventlane/test-kit";
import type { RelayOptions } from "@eventlane/relay";
import { Schema } from "effect";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";

const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), "../src/bin/eventlane.ts");

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON (for `--json` runs). */
  json<T = Record<string, unknown>>(): T;
}

/**
 * Runs the real `eventlane` bin from source as a child process. The child sees none of this
 * process's EVENTLANE_* variables, only `env`.
 */
export function eventlane(args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("EVENTLANE_")));
  const child = spawn(process.execPath, ["--conditions=eventlane-source", bin, ...args], {
    env: { ...base, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code,
        stdout,
        stderr,
        json<T>() {
          try {
            return JSON.parse(stdout) as T;
          } catch {
            throw new Error(`not JSON (exit ${code}): ${stdout}\nstderr: ${stderr}`);
          }
        },
      }),
    );
  });
}

export interface OutboxDb {
  readonly database: TestDatabase;
  readonly db: Kysely<unknown>;
  readonly pool: pg.Pool;
  readonly store: EventStore;
  /** The environment the CLI needs for this database. */
  readonly env: Record<string, string>;
  close(): Promise<void>;
}

/** A fresh database for one test file, migrated unless `migrate: false`. */
export async function setupOutboxDb(prefix: string, options: { migrate?: boolean } = {}): Promise<OutboxDb> {
  const database = await createTestDatabase(prefix);
  const pool = new pg.Pool({ connectionString: database.url, max: 6 });
  pool.on("error", () => undefined);
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
  if (options.migrate !== false) await migrateToLatest(db);
  return {
    database,
    db,
    pool,
    store: createEventStore({ notify: true }),
    env: { EVENTLANE_DATABASE_URL: database.url, EVENTLANE_KAFKA_BROKERS: kafkaBrokers.join(",") },
    async close() {
      await db.destroy().catch(() => undefined);
      await database.drop();
    },
  };
}

export const Payload = Schema.Struct({ key: Schema.String, n: Schema.Number });

/** An enqueued event routed to `topic`, keyed by `data.key`. */
export function itemEvent<T extends string = "item.recorded">(topic: string, type: T = "item.recorded" as T) {
  return defineEvent({ type, schema: Payload, route: { topic, key: (d) => d.key } });
}

/** An event-sourced aggregate whose one event goes to `topic`. */
export function counter(topic: string) {
  const Counted = defineEvent({
    type: "counter.counted",
    schema: Schema.Struct({ by: Schema.Number }),
    route: { topic },
  });
  const Counter = defineAggregate({
    type: "counter",
    events: [Counted],
    initialState: () => ({ total: 0 }),
    evolve: (s, e) => ({ total: s.total + e.data.by }),
    decide: (by: number) => [Counted.make({ by })],
  });
  return { Counted, Counter };
}

/** Relay options for tests: short lease, fast polling, no retention. */
export function relayOptions(
  url: string,
  topics: RelayOptions["topics"],
  extra: Partial<RelayOptions> = {},
): RelayOptions {
  return {
    connectionString: url,
    kafka: { brokers: kafkaBrokers, requestTimeoutMs: 5000, connectionTimeoutMs: 2000 },
    topics,
    leaseMs: 3000,
    heartbeatIntervalMs: 500,
    acquireIntervalMs: 250,
    pollIntervalMs: 100,
    backoffBaseMs: 100,
    backoffMaxMs: 1000,
    retentionMs: 0,
    ...extra,
  };
}

/** Rows of the outbox by status. */
export async function outboxStatuses(pool: pg.Pool): Promise<Record<string, number>> {
  const r = await pool.query<{ status: string; n: string }>(
    "SELECT status, count(*)::text AS n FROM eventlane.outbox GROUP BY status",
  );
  return Object.fromEntries(r.rows.map((x) => [x.status, Number(x.n)]));
}
