import { resolveTableNames, type TableNames } from "@eventlane/core";
import {
  booleanOption,
  integerOption,
  invalidOption,
  oneOfOption,
  optionSection,
  refuseUnknownOptions,
  stringOption,
} from "@eventlane/core/internal";
import { Redacted } from "effect";
import { randomUUID } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import type { ProducerPort } from "./producer/producer-port.ts";

/** A topic the relay publishes to. A bare string checks existence only. */
export interface RelayTopic {
  readonly name: string;
  /** Expected partition count; the relay refuses to start when the topic has another. */
  readonly partitions?: number;
}

/** SASL credentials, passed to the Kafka client as they are and never logged or reported. */
export interface RelaySasl {
  readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
  readonly username: string;
  readonly password: string;
}

/** How to reach Kafka. TLS and SASL pass through to the client and never appear in logs, errors or status. */
export interface RelayKafkaOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  /**
   * Kafka client id.
   * @default "eventlane-relay"
   */
  readonly clientId?: string;
  /**
   * TLS: `true` for the system CAs, or Node TLS options (ca, cert, key, ...).
   * @default false
   */
  readonly ssl?: boolean | ConnectionOptions;
  /**
   * SASL authentication.
   * @default undefined (none)
   */
  readonly sasl?: RelaySasl;
  /**
   * Time to establish a broker connection, in ms.
   * @default 3000
   */
  readonly connectionTimeoutMs?: number;
  /**
   * Time a produce request may take before it counts as a timeout, in ms.
   * @default 10000
   */
  readonly requestTimeoutMs?: number;
  /**
   * Which Kafka client the built-in producer adapter uses: `"kafkajs"`, or `"platformatic"` for
   * @platformatic/kafka (an optional peer dependency; needs Node.js >= 22.22 on 22.x, >= 24.6 on 24.x).
   * Both partition with Kafka's murmur2, so a key lands on the same partition with either.
   * @default "kafkajs"
   */
  readonly client?: KafkaClient;
  /**
   * `"idempotent"`: an idempotent producer (acks=all, one request in flight); a paused leader's
   * in-flight send can still land after its successor's (duplicates, bounded by one batch).
   * `"transactional"`: additionally one `transactional.id` per shard (`${transactionalIdPrefix}-shard-${n}`)
   * and each batch in one Kafka transaction, committed before the rows are marked: a successor's
   * producer fences the paused leader's, whose late sends the broker rejects. Consumers must read with
   * `isolation.level=read_committed` to skip aborted records.
   * @default "idempotent"
   */
  readonly mode?: KafkaProducerMode;
  /**
   * Prefix of the per-shard `transactional.id` in transactional mode. Every relay of one outbox must
   * use the same prefix, and no other producer may use it.
   * @default "eventlane-relay"
   */
  readonly transactionalIdPrefix?: string;
  /**
   * Transaction timeout in transactional mode, in ms: the broker aborts a transaction left open this long.
   * @default 60000
   */
  readonly transactionTimeoutMs?: number;
}

/** The Kafka clients the relay has built-in adapters for. */
export const KafkaClients = ["kafkajs", "platformatic"] as const;
export type KafkaClient = (typeof KafkaClients)[number];

/** Producer modes: idempotent (the default) or transactional (zombie sends fenced at the broker). */
export const KafkaProducerModes = ["idempotent", "transactional"] as const;
export type KafkaProducerMode = (typeof KafkaProducerModes)[number];

/**
 * Whether a Node.js version (`process.versions.node`) runs @platformatic/kafka, whose own requirement
 * is >= 22.22 on the 22 line and >= 24.6 on the 24 line.
 */
export function nodeSupportsPlatformatic(version: string): boolean {
  const [major = 0, minor = 0] = version.split(".").map((n) => Number.parseInt(n, 10));
  if (major < 22) return false;
  if (major === 22) return minor >= 22;
  if (major === 24) return minor >= 6;
  return true;
}

/** Options of {@link createRelay}. Resolved once into a frozen {@link ResolvedRelayOptions}. */
export interface RelayOptions {
  /** PostgreSQL connection string. Must reach the server directly or through a session-mode pooler. Never logged. */
  readonly connectionString: string;
  /** Kafka connection. Required unless `producer` is given. */
  readonly kafka?: RelayKafkaOptions;
  /**
   * A producer adapter to use instead of the built-in kafkajs one (tests, the second client).
   * @default a kafkajs producer built from `kafka`
   */
  readonly producer?: ProducerPort;
  /** Every topic the outbox routes to. Each must exist at start; a row for another topic is dead-lettered. */
  readonly topics: readonly (string | RelayTopic)[];
  /**
   * Schema of Eventlane's tables.
   * @default "eventlane"
   */
  readonly schema?: string;
  /**
   * Prefix of Eventlane's table names.
   * @default ""
   */
  readonly tablePrefix?: string;
  /**
   * Identifies this instance in `relay_shards.owner`, the dead letter log and `status()`.
   * @default a random UUID
   */
  readonly instanceId?: string;
  /**
   * Number of shards the outbox is split into, by `(key_hash & 0x7fffffff) % shardCount`. Recorded in
   * `relay_config`: every relay of one database must use the same count.
   * @default 1
   */
  readonly shardCount?: number;
  /**
   * The shard ids this instance competes for.
   * @default every shard, 0 .. shardCount - 1
   */
  readonly shards?: readonly number[];
  /**
   * Rows read and published per batch (the bound on replays after a crash).
   * @default 500
   */
  readonly batchSize?: number;
  /**
   * Lease of the shard lock, in ms. The server ends a silent lock session after this long
   * (`idle_session_timeout`), and a leader whose last good heartbeat is older stops before sending.
   * Takeover after a pause or partition takes about one lease.
   * @default 10000
   */
  readonly leaseMs?: number;
  /**
   * Heartbeat interval on the lock session, in ms. Must be under a third of `leaseMs`.
   * @default leaseMs / 4
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * How often a standby tries to take a shard's lock, in ms.
   * @default heartbeatIntervalMs
   */
  readonly acquireIntervalMs?: number;
  /**
   * LISTEN on the outbox's notify channel to wake up as soon as a writer commits.
   * @default true
   */
  readonly notify?: boolean;
  /**
   * Polling interval when the outbox is empty, in ms; the fallback when a notification is missed.
   * @default 1000 (with notify), 200 (without)
   */
  readonly pollIntervalMs?: number;
  /**
   * Record-level failures (oversize, invalid record) a row may have before it is dead-lettered and
   * its key parked. Connection, leadership, timeout and throttling errors never count.
   * @default 3
   */
  readonly maxAttempts?: number;
  /**
   * Shard back-off after a connection, leadership, timeout or throttling error, in ms: the first delay.
   * Delays double per consecutive failure up to `backoffMaxMs`, each jittered by ±20%:
   * 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, ... ms with the defaults.
   * @default 200
   */
  readonly backoffBaseMs?: number;
  /**
   * Cap of the shard back-off, in ms (before jitter).
   * @default 30000
   */
  readonly backoffMaxMs?: number;
  /**
   * What happens to a row once Kafka has it: `"keep"` marks it published (with the time and the
   * leader's epoch, for audits and replays) and retention deletes it after `retentionMs`; `"delete"`
   * deletes it in the same fenced statement. Deleting writes far less (an update rewrites the whole
   * 1 KiB row and its index entries, a delete only marks it): about twice the relay's throughput
   * with a fast Kafka client, at the price of the published history.
   * @default "keep"
   */
  readonly publishedRows?: PublishedRows;
  /**
   * Published and skipped rows older than this are deleted, in ms. `0` turns retention off.
   * @default 86400000 (one day)
   */
  readonly retentionMs?: number;
  /**
   * How often retention runs (on the leader of shard 0), in ms.
   * @default 60000
   */
  readonly retentionIntervalMs?: number;
  /**
   * Rows deleted per retention statement; each batch is its own short transaction.
   * @default 1000
   */
  readonly retentionBatchSize?: number;
  /**
   * Statement timeout of the relay's data connections, in ms (server side). The client gives up on a
   * data query after `min(statementTimeoutMs, leaseMs)`, so a silent connection never holds a
   * batch (or a former leader) longer than a lease.
   * @default 30000
   */
  readonly statementTimeoutMs?: number;
}

/** What the relay does with a row once Kafka has it (option `publishedRows`). */
export const PublishedRowsModes = ["keep", "delete"] as const;
export type PublishedRows = (typeof PublishedRowsModes)[number];

/** {@link RelayOptions} with every default applied, validated and frozen. Secrets are `Redacted`. */
export interface ResolvedRelayOptions {
  readonly connectionString: Redacted.Redacted<string>;
  readonly kafka: ResolvedKafkaOptions | undefined;
  readonly producer: ProducerPort | undefined;
  readonly topics: readonly RelayTopic[];
  readonly tables: TableNames;
  readonly instanceId: string;
  readonly shardCount: number;
  readonly shards: readonly number[];
  readonly batchSize: number;
  readonly leaseMs: number;
  readonly heartbeatIntervalMs: number;
  readonly acquireIntervalMs: number;
  readonly notify: boolean;
  readonly pollIntervalMs: number;
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly publishedRows: PublishedRows;
  readonly retentionMs: number;
  readonly retentionIntervalMs: number;
  readonly retentionBatchSize: number;
  readonly statementTimeoutMs: number;
}

export interface ResolvedKafkaOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl: Redacted.Redacted<boolean | ConnectionOptions> | undefined;
  readonly sasl: Redacted.Redacted<RelaySasl> | undefined;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly client: KafkaClient;
  readonly mode: KafkaProducerMode;
  readonly transactionalIdPrefix: string;
  readonly transactionTimeoutMs: number;
}

/** Every static default of the relay's options (the README's table is checked against it). */
export const RELAY_DEFAULTS = Object.freeze({
  kafka: Object.freeze({
    clientId: "eventlane-relay",
    client: "kafkajs",
    mode: "idempotent",
    transactionalIdPrefix: "eventlane-relay",
    transactionTimeoutMs: 60_000,
    connectionTimeoutMs: 3_000,
    requestTimeoutMs: 10_000,
  }),
  shardCount: 1,
  batchSize: 500,
  leaseMs: 10_000,
  notify: true,
  maxAttempts: 3,
  backoffBaseMs: 200,
  backoffMaxMs: 30_000,
  publishedRows: "keep",
  retentionMs: 86_400_000,
  retentionIntervalMs: 60_000,
  retentionBatchSize: 1_000,
  statementTimeoutMs: 30_000,
} as const satisfies Omit<RelayOptions, "connectionString" | "topics" | "kafka"> & {
  kafka: Omit<RelayKafkaOptions, "brokers">;
});

const KNOWN_OPTIONS = [
  "connectionString",
  "kafka",
  "producer",
  "topics",
  "schema",
  "tablePrefix",
  "instanceId",
  "shardCount",
  "shards",
  "batchSize",
  "leaseMs",
  "heartbeatIntervalMs",
  "acquireIntervalMs",
  "notify",
  "pollIntervalMs",
  "maxAttempts",
  "backoffBaseMs",
  "backoffMaxMs",
  "publishedRows",
  "retentionMs",
  "retentionIntervalMs",
  "retentionBatchSize",
  "statementTimeoutMs",
] as const satisfies readonly (keyof RelayOptions)[];

const KNOWN_KAFKA_OPTIONS = [
  "brokers",
  "clientId",
  "ssl",
  "sasl",
  "connectionTimeoutMs",
  "requestTimeoutMs",
  "client",
  "mode",
  "transactionalIdPrefix",
  "transactionTimeoutMs",
] as const satisfies readonly (keyof RelayKafkaOptions)[];

/** Client settings the relay's guarantees depend on: refused with the reason, not just as unknown. */
const FIXED_KAFKA_SETTINGS: Readonly<Record<string, string>> = {
  acks: "the relay always produces with acks=all: a record acknowledged by the leader alone can be lost",
  idempotent: "the relay's producer is always idempotent",
  maxInFlightRequests: "the relay keeps one request in flight (per-key order after a retry)",
  retry: "the relay owns its retries (its shard back-off and the lease's send deadline)",
  partitioner: "the relay partitions with Kafka's murmur2, the same for both clients",
};

const int = (option: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  integerOption(option, value, fallback, min, max);

function resolveKafka(kafka: RelayKafkaOptions, nodeVersion: string): ResolvedKafkaOptions {
  for (const key of Object.keys(kafka ?? {})) {
    const why = FIXED_KAFKA_SETTINGS[key];
    if (why !== undefined) invalidOption(`kafka.${key}`, `cannot be set: ${why}`);
  }
  optionSection("kafka", kafka, KNOWN_KAFKA_OPTIONS);
  const d = RELAY_DEFAULTS.kafka;
  if (!Array.isArray(kafka.brokers) || kafka.brokers.length === 0) {
    invalidOption("kafka.brokers", "must list at least one broker (host:port)");
  }
  for (const b of kafka.brokers) {
    if (typeof b !== "string" || !/^[^\s:]+:\d+$/.test(b))
      invalidOption("kafka.brokers", `"${String(b)}" is not host:port`);
  }
  const sasl = kafka.sasl;
  if (sasl !== undefined) {
    if (!["plain", "scram-sha-256", "scram-sha-512"].includes(sasl.mechanism)) {
      invalidOption("kafka.sasl.mechanism", "must be plain, scram-sha-256 or scram-sha-512");
    }
    if (typeof sasl.username !== "string" || typeof sasl.password !== "string") {
      invalidOption("kafka.sasl", "needs a string username and password");
    }
  }
  const client = oneOfOption("kafka.client", kafka.client, KafkaClients, d.client);
  if (client === "platformatic" && !nodeSupportsPlatformatic(nodeVersion)) {
    invalidOption(
      "kafka.client",
      `"platformatic" (@platformatic/kafka) needs Node.js >= 22.22 on 22.x or >= 24.6 on 24.x; this is Node.js ${nodeVersion}`,
    );
  }
  const mode = oneOfOption("kafka.mode", kafka.mode, KafkaProducerModes, d.mode);
  const transactionalIdPrefix = kafka.transactionalIdPrefix ?? d.transactionalIdPrefix;
  if (typeof transactionalIdPrefix !== "string" || !/^[a-zA-Z0-9._-]{1,200}$/.test(transactionalIdPrefix)) {
    invalidOption("kafka.transactionalIdPrefix", "must be 1 to 200 characters of a-z, A-Z, 0-9, '.', '_' or '-'");
  }
  return Object.freeze({
    client,
    mode,
    transactionalIdPrefix,
    transactionTimeoutMs: int(
      "kafka.transactionTimeoutMs",
      kafka.transactionTimeoutMs,
      d.transactionTimeoutMs,
      1000,
      900_000,
    ),
    brokers: Object.freeze([...kafka.brokers]),
    clientId: stringOption("kafka.clientId", kafka.clientId ?? d.clientId, 200),
    ssl: kafka.ssl === undefined || kafka.ssl === false ? undefined : Redacted.make(kafka.ssl),
    sasl: sasl === undefined ? undefined : Redacted.make({ ...sasl }),
    connectionTimeoutMs: int("kafka.connectionTimeoutMs", kafka.connectionTimeoutMs, d.connectionTimeoutMs, 100),
    requestTimeoutMs: int("kafka.requestTimeoutMs", kafka.requestTimeoutMs, d.requestTimeoutMs, 100),
  });
}

/** Validates {@link RelayOptions} and applies defaults; throws `InvalidOptionError` naming the option. */
export function resolveRelayOptions(
  options: RelayOptions,
  nodeVersion: string = process.versions.node,
): ResolvedRelayOptions {
  refuseUnknownOptions(options, KNOWN_OPTIONS, "relay");
  if (typeof options.connectionString !== "string" || options.connectionString.length === 0) {
    invalidOption("connectionString", "must be a PostgreSQL connection string");
  }
  if (options.kafka === undefined && options.producer === undefined) {
    invalidOption("kafka", "is required unless a producer adapter is given");
  }
  if (!Array.isArray(options.topics) || options.topics.length === 0) {
    invalidOption("topics", "must list every topic the outbox routes to");
  }
  const seen = new Set<string>();
  const topics = options.topics.map((t, i) => {
    const topic: RelayTopic = typeof t === "string" ? { name: t } : t;
    if (typeof topic.name !== "string" || !/^[a-zA-Z0-9._-]{1,249}$/.test(topic.name)) {
      invalidOption(`topics[${i}]`, `"${String(topic.name)}" is not a valid Kafka topic name`);
    }
    if (seen.has(topic.name)) invalidOption(`topics[${i}]`, `"${topic.name}" is listed twice`);
    seen.add(topic.name);
    if (topic.partitions !== undefined) int(`topics[${i}].partitions`, topic.partitions, 1, 1);
    return Object.freeze({ ...topic });
  });
  const tables = resolveTableNames({
    ...(options.schema !== undefined ? { schema: options.schema } : {}),
    ...(options.tablePrefix !== undefined ? { tablePrefix: options.tablePrefix } : {}),
  });
  const shardCount = int("shardCount", options.shardCount, RELAY_DEFAULTS.shardCount, 1, 1024);
  const shards = options.shards ?? Array.from({ length: shardCount }, (_, i) => i);
  if (!Array.isArray(shards) || shards.length === 0) invalidOption("shards", "must list at least one shard id");
  for (const s of shards) int("shards", s, 0, 0, shardCount - 1);
  if (new Set(shards).size !== shards.length) invalidOption("shards", "lists a shard twice");
  const leaseMs = int("leaseMs", options.leaseMs, RELAY_DEFAULTS.leaseMs, 1000);
  const heartbeatIntervalMs = int(
    "heartbeatIntervalMs",
    options.heartbeatIntervalMs,
    Math.floor(leaseMs / 4),
    50,
    Math.floor(leaseMs / 3),
  );
  const notify = booleanOption("notify", options.notify, RELAY_DEFAULTS.notify);
  const instanceId = options.instanceId ?? randomUUID();
  if (typeof instanceId !== "string" || instanceId.length === 0 || instanceId.length > 200) {
    invalidOption("instanceId", "must be a non-empty string of at most 200 characters");
  }
  const backoffBaseMs = int("backoffBaseMs", options.backoffBaseMs, RELAY_DEFAULTS.backoffBaseMs, 1);
  return Object.freeze({
    connectionString: Redacted.make(options.connectionString),
    kafka: options.kafka === undefined ? undefined : resolveKafka(options.kafka, nodeVersion),
    producer: options.producer,
    topics: Object.freeze(topics),
    tables,
    instanceId,
    shardCount,
    shards: Object.freeze([...shards]),
    batchSize: int("batchSize", options.batchSize, RELAY_DEFAULTS.batchSize, 1, 10_000),
    leaseMs,
    heartbeatIntervalMs,
    acquireIntervalMs: int("acquireIntervalMs", options.acquireIntervalMs, heartbeatIntervalMs, 10),
    notify,
    pollIntervalMs: int("pollIntervalMs", options.pollIntervalMs, notify ? 1000 : 200, 10),
    maxAttempts: int("maxAttempts", options.maxAttempts, RELAY_DEFAULTS.maxAttempts, 1, 1000),
    backoffBaseMs,
    backoffMaxMs: int("backoffMaxMs", options.backoffMaxMs, RELAY_DEFAULTS.backoffMaxMs, backoffBaseMs),
    publishedRows: oneOfOption(
      "publishedRows",
      options.publishedRows,
      PublishedRowsModes,
      RELAY_DEFAULTS.publishedRows,
    ),
    retentionMs: int("retentionMs", options.retentionMs, RELAY_DEFAULTS.retentionMs, 0),
    retentionIntervalMs: int(
      "retentionIntervalMs",
      options.retentionIntervalMs,
      RELAY_DEFAULTS.retentionIntervalMs,
      10,
    ),
    retentionBatchSize: int(
      "retentionBatchSize",
      options.retentionBatchSize,
      RELAY_DEFAULTS.retentionBatchSize,
      1,
      100_000,
    ),
    statementTimeoutMs: int("statementTimeoutMs", options.statementTimeoutMs, RELAY_DEFAULTS.statementTimeoutMs, 100),
  });
}
