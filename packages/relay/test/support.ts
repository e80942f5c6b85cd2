import { createEventStore, defineEvent, migrateToLatest, type EventStore } from "@eventlane/core";
import {
  createTestDatabase,
  createTopics,
  kafkaBrokers,
  type ReadMessage,
  readTopic,
  type TestDatabase,
  type TopicSpec,
  testKafka,
  waitFor,
} from "@eventlane/test-kit";
import { Schema } from "effect";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { KafkaClient, RelayKafkaOptions, RelayOptions } from "../src/index.ts";

export interface RelayTestDb {
  readonly db: TestDatabase;
  readonly kysely: Kysely<unknown>;
  readonly pool: pg.Pool;
  readonly store: EventStore;
  close(): Promise<void>;
}

/** A fresh database with Eventlane's schema, a Kysely for writers and core's event store. */
export async function setupDatabase(prefix: string): Promise<RelayTestDb> {
  const db = await createTestDatabase(prefix);
  const pool = new pg.Pool({ connectionString: db.url, max: 12 });
  pool.on("error", () => undefined);
  const kysely = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
  await migrateToLatest(kysely);
  return {
    db,
    kysely,
    pool,
    store: createEventStore(),
    async close() {
      await kysely.destroy().catch(() => undefined);
      await db.drop();
    },
  };
}

export const TestPayload = Schema.Struct({ key: Schema.String, n: Schema.Number, pad: Schema.optional(Schema.String) });

/** An event routed to `topic`, keyed by `data.key`. */
export function testEvent(topic: string, type = "test.happened") {
  return defineEvent({ type, schema: TestPayload, route: { topic, key: (d) => d.key } });
}

/** Both built-in adapters: the behaviour tests that matter run against each. */
export const kafkaClients: readonly KafkaClient[] = ["kafkajs", "platformatic"];

/** Kafka options of the test broker for one client. */
export function testKafkaOptions(
  client: KafkaClient = "kafkajs",
  extra: Partial<RelayKafkaOptions> = {},
): RelayKafkaOptions {
  return { brokers: kafkaBrokers, requestTimeoutMs: 5000, connectionTimeoutMs: 2000, client, ...extra };
}

/** Relay options tuned for tests: short lease, fast polling and back-off. */
export function testRelayOptions(
  url: string,
  topics: RelayOptions["topics"],
  overrides: Partial<RelayOptions> = {},
): RelayOptions {
  return {
    connectionString: url,
    kafka: testKafkaOptions(),
    topics,
    leaseMs: 3000,
    heartbeatIntervalMs: 500,
    acquireIntervalMs: 250,
    pollIntervalMs: 200,
    backoffBaseMs: 100,
    backoffMaxMs: 2000,
    retentionMs: 0,
    statementTimeoutMs: 2000,
    ...overrides,
  };
}

export async function countByStatus(pool: pg.Pool): Promise<Record<string, number>> {
  const r = await pool.query<{ status: string; n: string }>(
    "SELECT status, count(*)::text AS n FROM eventlane.outbox GROUP BY status",
  );
  return Object.fromEntries(r.rows.map((x) => [x.status, Number(x.n)]));
}

/**
 * For each key, the sequence header values in the order read, and the first-occurrence order.
 * Reading per partition keeps Kafka's order for each key (one key, one partition).
 */
export function sequencesByKey(messages: readonly ReadMessage[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const m of messages) {
    const seq = Number(m.headers["eventlane-key-sequence"]);
    const list = out.get(m.key!) ?? [];
    list.push(seq);
    out.set(m.key!, list);
  }
  return out;
}

/** First occurrences of each sequence, in read order. */
export function firstOccurrences(seqs: readonly number[]): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  for (const s of seqs) {
    if (seen.has(s)) continue;
    seen.add(s);
    out.push(s);
  }
  return out;
}

/** Number of messages beyond the first occurrence of each (key, sequence). */
export function duplicateCount(messages: readonly ReadMessage[]): number {
  const seen = new Set<string>();
  let dups = 0;
  for (const m of messages) {
    const id = m.headers["eventlane-event-id"]!;
    if (seen.has(id)) dups++;
    else seen.add(id);
  }
  return dups;
}

export const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Concurrent writers enqueueing events of shared keys until `stop()`; `written()` is the total. */
export function startWriters(
  t: RelayTestDb,
  event: ReturnType<typeof testEvent>,
  options: { writers: number; keys: number; prefix: string; pauseMs?: number },
) {
  let running = true;
  let total = 0;
  const loops = Array.from({ length: options.writers }, async (_, w) => {
    let i = 0;
    while (running) {
      const key = `${options.prefix}-${(i * options.writers + w) % options.keys}`;
      i++;
      await t.store.enqueue(t.kysely, event, { key, n: i });
      total++;
      if (options.pauseMs !== undefined) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  });
  return {
    written: () => total,
    async stop() {
      running = false;
      await Promise.all(loops);
      return total;
    },
  };
}

/**
 * Checks invariant 2 on what a consumer read: per key, first occurrences of the sequence header are
 * exactly 1..n (complete, in order). Returns the number of duplicates.
 */
export function assertCompleteInOrder(messages: readonly ReadMessage[], expectedTotal: number): number {
  const byKey = sequencesByKey(messages);
  let distinct = 0;
  for (const [key, seqs] of byKey) {
    const firsts = firstOccurrences(seqs);
    distinct += firsts.length;
    const expected = range(1, firsts.length);
    if (JSON.stringify(firsts) !== JSON.stringify(expected)) {
      throw new Error(
        `key ${key}: first occurrences ${JSON.stringify(firsts.slice(0, 50))} are not 1..${firsts.length}`,
      );
    }
  }
  if (distinct !== expectedTotal) throw new Error(`read ${distinct} distinct events, ${expectedTotal} were written`);
  return duplicateCount(messages);
}

/** Reads a topic until `total` distinct event ids are there (or the timeout). */
export function readAllEvents(topic: string, total: number, timeoutMs = 30_000, brokers?: readonly string[]) {
  return readTopic(
    topic,
    (m) => new Set(m.map((x) => x.headers["eventlane-event-id"])).size >= total,
    brokers === undefined ? { timeoutMs } : { timeoutMs, brokers },
  );
}

/**
 * test-kit's `createTopics`, robust to one race of the broker: right after creating a topic, Kafka 4
 * can answer the metadata request of kafkajs's wait for leaders with UNKNOWN_TOPIC_OR_PARTITION, on
 * which kafkajs gives up (it only waits out LEADER_NOT_AVAILABLE). The topics exist by then, so this
 * waits for their leaders itself.
 */
export async function createTopicsSettled(
  specs: readonly TopicSpec[],
  brokers: readonly string[] = kafkaBrokers,
): Promise<void> {
  try {
    await createTopics(specs, brokers);
    return;
  } catch (error) {
    if ((error as { readonly type?: unknown }).type !== "UNKNOWN_TOPIC_OR_PARTITION") throw error;
  }
  const admin = testKafka(brokers).admin();
  await admin.connect();
  try {
    await waitFor(
      "the new topics' leaders",
      async () => {
        const meta = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.topic) }).catch(() => undefined);
        return meta?.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0)) === true;
      },
      20_000,
      100,
    );
  } finally {
    await admin.disconnect();
  }
}
