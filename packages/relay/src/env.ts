import { RelayEnvError } from "./errors.ts";
import {
  type KafkaClient,
  KafkaClients,
  type KafkaProducerMode,
  KafkaProducerModes,
  PublishedRowsModes,
  type RelayKafkaOptions,
  type RelayOptions,
  type RelaySasl,
  type RelayTopic,
} from "./options.ts";

/**
 * Environment variables read by {@link relayOptionsFromEnv}. Required: `EVENTLANE_DATABASE_URL`,
 * `EVENTLANE_KAFKA_BROKERS`, `EVENTLANE_RELAY_TOPICS`.
 */
export const RelayEnvVariables = {
  databaseUrl: "EVENTLANE_DATABASE_URL",
  kafkaBrokers: "EVENTLANE_KAFKA_BROKERS",
  kafkaClientId: "EVENTLANE_KAFKA_CLIENT_ID",
  kafkaClient: "EVENTLANE_KAFKA_CLIENT",
  kafkaMode: "EVENTLANE_KAFKA_MODE",
  kafkaTransactionalIdPrefix: "EVENTLANE_KAFKA_TRANSACTIONAL_ID_PREFIX",
  kafkaSsl: "EVENTLANE_KAFKA_SSL",
  kafkaSaslMechanism: "EVENTLANE_KAFKA_SASL_MECHANISM",
  kafkaSaslUsername: "EVENTLANE_KAFKA_SASL_USERNAME",
  kafkaSaslPassword: "EVENTLANE_KAFKA_SASL_PASSWORD",
  topics: "EVENTLANE_RELAY_TOPICS",
  schema: "EVENTLANE_SCHEMA",
  tablePrefix: "EVENTLANE_TABLE_PREFIX",
  instanceId: "EVENTLANE_RELAY_INSTANCE_ID",
  shardCount: "EVENTLANE_RELAY_SHARD_COUNT",
  shards: "EVENTLANE_RELAY_SHARDS",
  batchSize: "EVENTLANE_RELAY_BATCH_SIZE",
  leaseMs: "EVENTLANE_RELAY_LEASE_MS",
  heartbeatIntervalMs: "EVENTLANE_RELAY_HEARTBEAT_INTERVAL_MS",
  notify: "EVENTLANE_RELAY_NOTIFY",
  pollIntervalMs: "EVENTLANE_RELAY_POLL_INTERVAL_MS",
  maxAttempts: "EVENTLANE_RELAY_MAX_ATTEMPTS",
  publishedRows: "EVENTLANE_RELAY_PUBLISHED_ROWS",
  retentionMs: "EVENTLANE_RELAY_RETENTION_MS",
  retentionIntervalMs: "EVENTLANE_RELAY_RETENTION_INTERVAL_MS",
} as const;

type Env = Readonly<Record<string, string | undefined>>;

function read(env: Env, variable: string): string | undefined {
  const v = env[variable]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

function required(env: Env, variable: string, what: string): string {
  const v = read(env, variable);
  if (v === undefined) throw new RelayEnvError({ variable, message: `${variable} is required: ${what}` });
  return v;
}

function integer(env: Env, variable: string): number | undefined {
  const v = read(env, variable);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) {
    throw new RelayEnvError({
      variable,
      message: `${variable} must be a non-negative integer; got ${JSON.stringify(v)}`,
    });
  }
  return Number(v);
}

function boolean(env: Env, variable: string): boolean | undefined {
  const v = read(env, variable)?.toLowerCase();
  if (v === undefined) return undefined;
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new RelayEnvError({ variable, message: `${variable} must be true or false; got ${JSON.stringify(v)}` });
}

function oneOf<T extends string>(env: Env, variable: string, allowed: readonly T[]): T | undefined {
  const v = read(env, variable)?.toLowerCase();
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new RelayEnvError({
      variable,
      message: `${variable} must be one of ${allowed.join(", ")}; got ${JSON.stringify(v)}`,
    });
  }
  return v as T;
}

function list(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * Builds {@link RelayOptions} from environment variables ({@link RelayEnvVariables}); throws
 * {@link RelayEnvError} naming the variable. Values of secret variables never appear in messages.
 * `EVENTLANE_RELAY_TOPICS` is a comma list of `name` or `name:partitions`.
 */
export function relayOptionsFromEnv(env: Env = process.env): RelayOptions {
  const V = RelayEnvVariables;
  const connectionString = required(env, V.databaseUrl, "the PostgreSQL connection string");
  const brokers = list(required(env, V.kafkaBrokers, "a comma list of host:port"));
  for (const b of brokers) {
    if (!/^[^\s:]+:\d+$/.test(b)) {
      throw new RelayEnvError({ variable: V.kafkaBrokers, message: `${V.kafkaBrokers}: "${b}" is not host:port` });
    }
  }
  const topics: RelayTopic[] = list(required(env, V.topics, "a comma list of topic or topic:partitions")).map(
    (entry) => {
      const m = /^([a-zA-Z0-9._-]+)(?::(\d+))?$/.exec(entry);
      if (m === null) {
        throw new RelayEnvError({
          variable: V.topics,
          message: `${V.topics}: "${entry}" is not topic or topic:partitions`,
        });
      }
      return m[2] === undefined ? { name: m[1]! } : { name: m[1]!, partitions: Number(m[2]) };
    },
  );
  let sasl: RelaySasl | undefined;
  const mechanism = read(env, V.kafkaSaslMechanism)?.toLowerCase();
  if (mechanism !== undefined) {
    if (mechanism !== "plain" && mechanism !== "scram-sha-256" && mechanism !== "scram-sha-512") {
      throw new RelayEnvError({
        variable: V.kafkaSaslMechanism,
        message: `${V.kafkaSaslMechanism} must be plain, scram-sha-256 or scram-sha-512`,
      });
    }
    sasl = {
      mechanism,
      username: required(env, V.kafkaSaslUsername, `the SASL user name (${V.kafkaSaslMechanism} is set)`),
      password: required(env, V.kafkaSaslPassword, `the SASL password (${V.kafkaSaslMechanism} is set)`),
    };
  }
  const ssl = boolean(env, V.kafkaSsl);
  const clientId = read(env, V.kafkaClientId);
  const client = oneOf<KafkaClient>(env, V.kafkaClient, KafkaClients);
  const mode = oneOf<KafkaProducerMode>(env, V.kafkaMode, KafkaProducerModes);
  const transactionalIdPrefix = read(env, V.kafkaTransactionalIdPrefix);
  const kafka: RelayKafkaOptions = {
    brokers,
    ...(clientId !== undefined ? { clientId } : {}),
    ...(client !== undefined ? { client } : {}),
    ...(mode !== undefined ? { mode } : {}),
    ...(transactionalIdPrefix !== undefined ? { transactionalIdPrefix } : {}),
    ...(ssl !== undefined ? { ssl } : {}),
    ...(sasl !== undefined ? { sasl } : {}),
  };
  const shardsRaw = read(env, V.shards);
  const shards =
    shardsRaw === undefined
      ? undefined
      : list(shardsRaw).map((s) => {
          if (!/^\d+$/.test(s)) {
            throw new RelayEnvError({ variable: V.shards, message: `${V.shards} must be a comma list of shard ids` });
          }
          return Number(s);
        });
  const optional = {
    schema: read(env, V.schema),
    tablePrefix: read(env, V.tablePrefix),
    instanceId: read(env, V.instanceId),
    shardCount: integer(env, V.shardCount),
    shards,
    batchSize: integer(env, V.batchSize),
    leaseMs: integer(env, V.leaseMs),
    heartbeatIntervalMs: integer(env, V.heartbeatIntervalMs),
    notify: boolean(env, V.notify),
    pollIntervalMs: integer(env, V.pollIntervalMs),
    maxAttempts: integer(env, V.maxAttempts),
    publishedRows: oneOf(env, V.publishedRows, PublishedRowsModes),
    retentionMs: integer(env, V.retentionMs),
    retentionIntervalMs: integer(env, V.retentionIntervalMs),
  };
  const defined = Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined));
  return { connectionString, kafka, topics, ...defined };
}
