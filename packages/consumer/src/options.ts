import type { DomainEvent, EventDefinition, EventOf } from "@eventlane/core";
import {
  integerOption,
  invalidOption,
  oneOfOption,
  optionSection,
  refuseUnknownOptions,
  stringOption,
} from "@eventlane/core/internal";
import { Redacted } from "effect";
import type { Kysely, Transaction } from "kysely";
import type { ConnectionOptions } from "node:tls";
import type { ConsumerSasl, ResolvedConsumerKafkaOptions } from "./client/consumer-client.ts";
import type { PositionKind } from "./message/decode-message.ts";
import { type ConsumerTableNames, resolveConsumerTableNames } from "./schema/names.ts";

/** Kafka isolation levels; `read_committed` hides records of aborted (and open) producer transactions. */
export const IsolationLevels = ["read_committed", "read_uncommitted"] as const;
export type IsolationLevel = (typeof IsolationLevels)[number];

/** What to do when a key's position jumps past the next expected one. */
export const GapPolicies = ["continue", "refuse"] as const;
export type GapPolicy = (typeof GapPolicies)[number];

/** What a dead letter does to the later records of its key. */
export const DeadLetterPolicies = ["continue", "park_key"] as const;
export type DeadLetterPolicy = (typeof DeadLetterPolicies)[number];

/** The Kafka clients the consumer has built-in adapters for. */
export const ConsumerKafkaClients = ["kafkajs", "platformatic"] as const;
export type ConsumerKafkaClient = (typeof ConsumerKafkaClients)[number];

/** Kafka consumer group protocols: `classic` (JoinGroup/SyncGroup) and `consumer` (KIP-848). */
export const GroupProtocols = ["classic", "consumer"] as const;
export type GroupProtocol = (typeof GroupProtocols)[number];

/** Set on a handler's context when the record is a replayed dead letter. */
export interface ReplayInfo {
  /** The dead letter's id. */
  readonly deadLetterId: string;
  /** Why it was dead-lettered. */
  readonly reason: string;
  /** Who asked for the replay. */
  readonly actor: string;
}

/** Where a record came from and what its headers said: everything a handler gets but the transaction. */
export interface RecordContext {
  readonly topic: string;
  readonly partition: number;
  /** The record's offset (a decimal string); for a replay, the original record's offset. */
  readonly offset: string;
  /** The message key (stream id or enqueue key). */
  readonly key: string;
  readonly eventId: string;
  /** The schema version the event was stored with, before upcasting. */
  readonly storedSchemaVersion: number;
  /** The key sequence or aggregate version, when the message carries one. */
  readonly position: number | null;
  readonly positionKind: PositionKind | null;
  readonly aggregateType: string | null;
  readonly aggregateId: string | null;
  /** Every header, as UTF-8 strings (traceparent, correlation id, ...). */
  readonly headers: Readonly<Record<string, string>>;
  /** Not null when this is a dead letter being replayed (it then runs after later events of its key). */
  readonly replay: ReplayInfo | null;
}

/** What a per-record handler gets: the record's context and the consumer's open transaction. */
export interface EventContext<DB> extends RecordContext {
  /** The consumer's open transaction: write your effects here; the watermarks are updated in it too. */
  readonly trx: Transaction<DB>;
}

/** Applies one decoded event inside the chunk's transaction. Throw to roll it back (it is retried). */
export type EventHandler<DB, E extends DomainEvent> = (event: E, context: EventContext<DB>) => Promise<void> | void;

/** One event of a batch, with its record's context. */
export interface BatchItem<E extends DomainEvent> {
  readonly event: E;
  readonly context: RecordContext;
}

/** What a batch handler gets besides its events. */
export interface BatchContext<DB> {
  /** The chunk's open transaction. */
  readonly trx: Transaction<DB>;
  readonly topic: string;
  readonly partition: number;
}

/**
 * Applies several decoded events (in offset order) inside the chunk's transaction, for bulk writes.
 * Throw to roll them back: the consumer then applies them one at a time, to isolate the failing one.
 */
export type BatchHandler<DB, E extends DomainEvent> = (
  items: readonly BatchItem<E>[],
  context: BatchContext<DB>,
) => Promise<void> | void;

/**
 * One optional handler per event type of `events`. A known event without a handler is acknowledged
 * (its watermark advances) and counted as ignored; an unknown one is dead-lettered.
 */
export type EventHandlers<DB, Defs extends readonly EventDefinition[]> = {
  readonly [D in Defs[number] as D["type"]]?: EventHandler<DB, EventOf<D>>;
};

/** One optional batch handler per event type of `events`; a type has a handler or a batch handler. */
export type BatchHandlers<DB, Defs extends readonly EventDefinition[]> = {
  readonly [D in Defs[number] as D["type"]]?: BatchHandler<DB, EventOf<D>>;
};

/** How the consumer reaches Kafka. TLS and SASL pass through to the client and never appear in logs or errors. */
export interface ConsumerKafkaOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  /**
   * The Kafka client: `"kafkajs"` or `"platformatic"` (@platformatic/kafka). Each is an optional peer
   * dependency, imported only when chosen.
   * @default "kafkajs"
   */
  readonly client?: ConsumerKafkaClient;
  /**
   * The consumer group protocol. `"consumer"` is KIP-848's (the broker assigns partitions, no
   * stop-the-world rebalance; Kafka >= 4.0, @platformatic/kafka only). Under it the session timeout
   * and heartbeat interval are broker settings, so `sessionTimeoutMs` and `heartbeatIntervalMs` are refused.
   * @default "classic"
   */
  readonly groupProtocol?: GroupProtocol;
  /**
   * Kafka client id.
   * @default "eventlane-consumer"
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
  readonly sasl?: ConsumerSasl;
  /**
   * Time to establish a broker connection, in ms.
   * @default 3000
   */
  readonly connectionTimeoutMs?: number;
  /**
   * Time a request to the broker may take, in ms.
   * @default 30000
   */
  readonly requestTimeoutMs?: number;
}

/** Options of {@link createConsumer}. */
export interface ConsumerOptions<DB, Defs extends readonly EventDefinition[]> {
  /** How to reach Kafka and with which client. The consumer creates and owns its Kafka consumer. */
  readonly kafka: ConsumerKafkaOptions;
  /**
   * The consumer's own database; handlers, watermarks and dead letters share one transaction per
   * chunk here. Give its pool at least `partitionsConsumedConcurrently + 1` connections (one per
   * partition being applied, one for replays and lag).
   */
  readonly db: Kysely<DB>;
  /** The Kafka consumer group. */
  readonly groupId: string;
  /** The event definitions this consumer decodes (the same ones the writers use). */
  readonly events: Defs;
  /**
   * What to do with each event type, one event at a time.
   * @default {}
   */
  readonly handlers?: NoInfer<EventHandlers<DB, Defs>>;
  /**
   * Batch handlers by event type: each gets the chunk's consecutive new events of its type at once
   * (runs of one type, so per-key order across types holds), for bulk writes.
   * @default {}
   */
  readonly batchHandlers?: NoInfer<BatchHandlers<DB, Defs>>;
  /**
   * One batch handler for every new event of a chunk, whatever its type (in offset order). Excludes
   * `handlers` and `batchHandlers`.
   * @default undefined
   */
  readonly handleBatch?: BatchHandler<DB, EventOf<Defs[number]>>;
  /**
   * Topics to subscribe to.
   * @default the distinct `route.topic` of `events`
   */
  readonly topics?: readonly string[];
  /**
   * The name watermarks, inbox rows and dead letters are kept under in the database; two consumers
   * sharing a database need different names.
   * @default groupId
   */
  readonly name?: string;
  /**
   * PostgreSQL schema of the consumer's tables (validated identifier).
   * @default "eventlane_consumer"
   */
  readonly schema?: string;
  /**
   * Use `read_committed` when the relay publishes with Kafka transactions, so records of aborted
   * transactions (a fenced zombie's) are never applied. It costs nothing with a non-transactional relay.
   * @default "read_committed"
   */
  readonly isolation?: IsolationLevel;
  /**
   * What to do when a key's position (key sequence or aggregate version) is more than one past its
   * watermark. `"continue"`: apply it, move the watermark to it, report the gap. `"refuse"`:
   * dead-letter it with reason `gap_refused` and keep the watermark, so every later event of that key
   * is refused too until an operator repairs the watermark; other keys keep flowing. Either way the
   * gap is reported (`gap:detected`, the `gaps` counter and the watermark's `gaps` column). A
   * consumer never waits for the missing event: Kafka delivers a partition in order, so it will not
   * come later.
   * @default "continue"
   */
  readonly onGap?: GapPolicy;
  /**
   * What a dead letter does to its key. `"continue"`: later events of the key are applied (a replay
   * of the dead letter then runs after them). `"park_key"`: later events of the key are stored as
   * dead letters too (reason `key_parked`) until the key's dead letters are replayed or skipped, in
   * order; for handlers that depend on per-key order.
   * @default "continue"
   */
  readonly onDeadLetter?: DeadLetterPolicy;
  /**
   * Start a new consumer group from the beginning of its topics (else from the end).
   * @default true
   */
  readonly fromBeginning?: boolean;
  /**
   * How many times a handler is run for one message before the message is dead-lettered with
   * reason `handler_failed`. Database connection, serialisation and deadlock errors do not count:
   * they are retried until the database answers, with backoff (ms): 100, 200, 400, ... capped at 5000.
   * @default 3
   */
  readonly handlerAttempts?: number;
  /**
   * The most records of one partition applied in one transaction. A chunk never waits to fill: it
   * takes what has been fetched for the partition, up to this many, so a quiet partition is not held
   * back and a busy one is applied in large chunks.
   * @default 500
   */
  readonly batchSize?: number;
  /**
   * Partitions applied in parallel, each in its own transaction and in order within itself; one
   * partition in handler back-off does not stall the others.
   * @default 1
   */
  readonly partitionsConsumedConcurrently?: number;
  /**
   * Classic group protocol: how long a dead consumer keeps its partitions before a rebalance.
   * Refused with `kafka.groupProtocol: "consumer"` (a broker setting there).
   * @default 30000
   */
  readonly sessionTimeoutMs?: number;
  /**
   * Classic group protocol: heartbeat interval, below a third of the session timeout. Refused with
   * `kafka.groupProtocol: "consumer"`.
   * @default min(3000, sessionTimeoutMs / 3)
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * Longest time a fetch waits for new records.
   * @default 500
   */
  readonly maxWaitTimeMs?: number;
  /**
   * How often a running consumer looks for dead letters whose replay was requested from outside
   * (`requestReplay`, the CLI) and applies them, in ms.
   * @default 1000
   */
  readonly replayPollMs?: number;
  /**
   * How often the consumer reads the partitions' end offsets to report its lag, in ms.
   * @default 5000
   */
  readonly lagIntervalMs?: number;
}

/** The defaults of every optional consumer option (the README's table is checked against it). */
export const CONSUMER_DEFAULTS = Object.freeze({
  client: "kafkajs",
  groupProtocol: "classic",
  clientId: "eventlane-consumer",
  connectionTimeoutMs: 3_000,
  requestTimeoutMs: 30_000,
  schema: "eventlane_consumer",
  isolation: "read_committed",
  onGap: "continue",
  onDeadLetter: "continue",
  fromBeginning: true,
  handlerAttempts: 3,
  batchSize: 500,
  partitionsConsumedConcurrently: 1,
  sessionTimeoutMs: 30_000,
  maxWaitTimeMs: 500,
  replayPollMs: 1_000,
  lagIntervalMs: 5_000,
} as const);

/** {@link ConsumerOptions} validated once and frozen. */
export interface ResolvedConsumerOptions<DB, Defs extends readonly EventDefinition[]> {
  readonly kafka: ResolvedConsumerKafkaOptions;
  readonly groupProtocol: GroupProtocol;
  readonly db: Kysely<DB>;
  readonly groupId: string;
  readonly name: string;
  readonly events: Defs;
  readonly definitions: ReadonlyMap<string, EventDefinition>;
  readonly handlers: ReadonlyMap<string, EventHandler<DB, DomainEvent>>;
  readonly batchHandlers: ReadonlyMap<string, BatchHandler<DB, DomainEvent>>;
  readonly handleBatch: BatchHandler<DB, DomainEvent> | null;
  readonly topics: readonly string[];
  readonly names: ConsumerTableNames;
  readonly isolation: IsolationLevel;
  readonly onGap: GapPolicy;
  readonly onDeadLetter: DeadLetterPolicy;
  readonly fromBeginning: boolean;
  readonly handlerAttempts: number;
  readonly batchSize: number;
  readonly partitionsConsumedConcurrently: number;
  /** null under the consumer group protocol. */
  readonly sessionTimeoutMs: number | null;
  /** null under the consumer group protocol. */
  readonly heartbeatIntervalMs: number | null;
  readonly maxWaitTimeMs: number;
  readonly replayPollMs: number;
  readonly lagIntervalMs: number;
}

const KNOWN = [
  "kafka",
  "db",
  "groupId",
  "events",
  "handlers",
  "batchHandlers",
  "handleBatch",
  "topics",
  "name",
  "schema",
  "isolation",
  "onGap",
  "onDeadLetter",
  "fromBeginning",
  "handlerAttempts",
  "batchSize",
  "partitionsConsumedConcurrently",
  "sessionTimeoutMs",
  "heartbeatIntervalMs",
  "maxWaitTimeMs",
  "replayPollMs",
  "lagIntervalMs",
] as const;
const KNOWN_KAFKA = [
  "brokers",
  "client",
  "groupProtocol",
  "clientId",
  "ssl",
  "sasl",
  "connectionTimeoutMs",
  "requestTimeoutMs",
] as const;
const SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"] as const;

function resolveKafka(kafka: ConsumerKafkaOptions | undefined): {
  kafka: ResolvedConsumerKafkaOptions;
  groupProtocol: GroupProtocol;
} {
  if (typeof kafka !== "object" || kafka === null || typeof (kafka as { consumer?: unknown }).consumer === "function") {
    invalidOption("kafka", "must be an object { brokers, client?, ... } (the consumer creates its own Kafka client)");
  }
  const k = kafka as ConsumerKafkaOptions;
  optionSection("kafka", k, KNOWN_KAFKA);
  if (!Array.isArray(k.brokers) || k.brokers.length === 0)
    invalidOption("kafka.brokers", "must be a non-empty array of host:port");
  for (const b of k.brokers) {
    if (typeof b !== "string" || !/^[^\s:]+:[0-9]{1,5}$/.test(b)) {
      invalidOption("kafka.brokers", `each broker must be "host:port"; got ${JSON.stringify(b)}`);
    }
  }
  const client = oneOfOption("kafka.client", k.client, ConsumerKafkaClients, CONSUMER_DEFAULTS.client);
  const groupProtocol = oneOfOption(
    "kafka.groupProtocol",
    k.groupProtocol,
    GroupProtocols,
    CONSUMER_DEFAULTS.groupProtocol,
  );
  if (groupProtocol === "consumer" && client === "kafkajs") {
    invalidOption(
      "kafka.groupProtocol",
      'kafkajs speaks only the "classic" group protocol; use client "platformatic" for "consumer"',
    );
  }
  const ssl = k.ssl ?? false;
  if (typeof ssl !== "boolean" && (typeof ssl !== "object" || ssl === null)) {
    invalidOption("kafka.ssl", "must be a boolean or Node TLS options");
  }
  if (k.sasl !== undefined) {
    const s = k.sasl as Partial<ConsumerSasl>;
    oneOfOption("kafka.sasl.mechanism", s.mechanism, SASL_MECHANISMS, "plain");
    stringOption("kafka.sasl.username", s.username, 1024);
    // The password is never echoed.
    if (typeof s.password !== "string" || s.password.length === 0)
      invalidOption("kafka.sasl.password", "must be a non-empty string");
  }
  return {
    groupProtocol,
    kafka: Object.freeze({
      client,
      brokers: Object.freeze([...k.brokers]),
      clientId: stringOption("kafka.clientId", k.clientId ?? CONSUMER_DEFAULTS.clientId),
      ssl: Redacted.make(ssl),
      sasl: k.sasl === undefined ? undefined : Redacted.make(k.sasl),
      connectionTimeoutMs: integerOption(
        "kafka.connectionTimeoutMs",
        k.connectionTimeoutMs,
        CONSUMER_DEFAULTS.connectionTimeoutMs,
        100,
        120_000,
      ),
      requestTimeoutMs: integerOption(
        "kafka.requestTimeoutMs",
        k.requestTimeoutMs,
        CONSUMER_DEFAULTS.requestTimeoutMs,
        1_000,
        300_000,
      ),
    }),
  };
}

function handlerMap<H>(
  option: string,
  value: unknown,
  definitions: ReadonlyMap<string, EventDefinition>,
): Map<string, H> {
  const out = new Map<string, H>();
  if (value === undefined) return out;
  if (typeof value !== "object" || value === null)
    invalidOption(option, "must be an object of functions by event type");
  for (const [type, handler] of Object.entries(value as Record<string, unknown>)) {
    if (!definitions.has(type)) {
      invalidOption(
        option,
        `"${type}" is not the type of any definition in events (${[...definitions.keys()].join(", ")})`,
      );
    }
    if (typeof handler !== "function") invalidOption(`${option}.${type}`, "must be a function");
    out.set(type, handler as H);
  }
  return out;
}

/**
 * Validates and resolves consumer options once. Throws `InvalidOptionError` (code
 * `EVENTLANE_INVALID_OPTION`, `option` names the field) or `InvalidIdentifierError` for `schema`.
 */
export function resolveConsumerOptions<DB, Defs extends readonly EventDefinition[]>(
  options: ConsumerOptions<DB, Defs>,
): ResolvedConsumerOptions<DB, Defs> {
  if (typeof options !== "object" || options === null) invalidOption("options", "must be an object");
  refuseUnknownOptions(options, KNOWN, "consumer");
  const { kafka, groupProtocol } = resolveKafka(options.kafka);
  const db = options.db as Partial<Kysely<DB>> | undefined;
  if (typeof db?.transaction !== "function" || typeof db.selectFrom !== "function") {
    invalidOption("db", "must be a Kysely instance");
  }
  if ((db as { isTransaction?: boolean }).isTransaction === true) {
    invalidOption("db", "must be a Kysely instance, not a transaction: the consumer opens one per chunk");
  }
  const groupId = stringOption("groupId", options.groupId);
  const name = stringOption("name", options.name ?? groupId);

  if (!Array.isArray(options.events) || options.events.length === 0) {
    invalidOption("events", "must be a non-empty array of event definitions");
  }
  const definitions = new Map<string, EventDefinition>();
  for (const def of options.events) {
    if (typeof def?.type !== "string" || typeof def.decode !== "function") {
      invalidOption("events", "every entry must be an event definition from defineEvent()");
    }
    if (definitions.has(def.type)) invalidOption("events", `event type "${def.type}" is listed twice`);
    definitions.set(def.type, def);
  }
  const handlers = handlerMap<EventHandler<DB, DomainEvent>>("handlers", options.handlers, definitions);
  const batchHandlers = handlerMap<BatchHandler<DB, DomainEvent>>("batchHandlers", options.batchHandlers, definitions);
  for (const type of batchHandlers.keys()) {
    if (handlers.has(type))
      invalidOption(`batchHandlers.${type}`, `"${type}" has a handler already; give a type one or the other`);
  }
  const handleBatch = options.handleBatch ?? null;
  if (handleBatch !== null) {
    if (typeof handleBatch !== "function") invalidOption("handleBatch", "must be a function");
    if (handlers.size > 0 || batchHandlers.size > 0) {
      invalidOption("handleBatch", "takes every event of a chunk: leave handlers and batchHandlers out");
    }
  }

  const topics = options.topics ?? [...new Set(options.events.map((d) => d.route.topic))];
  if (!Array.isArray(topics) || topics.length === 0)
    invalidOption("topics", "must be a non-empty array of topic names");
  for (const t of topics) stringOption("topics", t);

  const names = resolveConsumerTableNames(options.schema === undefined ? {} : { schema: options.schema });
  const fromBeginning = options.fromBeginning ?? CONSUMER_DEFAULTS.fromBeginning;
  if (typeof fromBeginning !== "boolean")
    invalidOption("fromBeginning", `must be a boolean; got ${typeof fromBeginning}`);

  let sessionTimeoutMs: number | null = null;
  let heartbeatIntervalMs: number | null = null;
  if (groupProtocol === "consumer") {
    for (const option of ["sessionTimeoutMs", "heartbeatIntervalMs"] as const) {
      if (options[option] !== undefined) {
        invalidOption(
          option,
          'is a broker setting under kafka.groupProtocol "consumer" (group.consumer.session.timeout.ms, group.consumer.heartbeat.interval.ms); leave it out',
        );
      }
    }
  } else {
    sessionTimeoutMs = integerOption(
      "sessionTimeoutMs",
      options.sessionTimeoutMs,
      CONSUMER_DEFAULTS.sessionTimeoutMs,
      6_000,
      300_000,
    );
    heartbeatIntervalMs = integerOption(
      "heartbeatIntervalMs",
      options.heartbeatIntervalMs,
      Math.min(3_000, Math.floor(sessionTimeoutMs / 3)),
      100,
      Math.floor(sessionTimeoutMs / 3),
    );
  }

  return Object.freeze({
    kafka,
    groupProtocol,
    db: options.db,
    groupId,
    name,
    events: options.events,
    definitions,
    handlers,
    batchHandlers,
    handleBatch: handleBatch as BatchHandler<DB, DomainEvent> | null,
    topics: Object.freeze([...topics]),
    names,
    isolation: oneOfOption("isolation", options.isolation, IsolationLevels, CONSUMER_DEFAULTS.isolation),
    onGap: oneOfOption("onGap", options.onGap, GapPolicies, CONSUMER_DEFAULTS.onGap),
    onDeadLetter: oneOfOption("onDeadLetter", options.onDeadLetter, DeadLetterPolicies, CONSUMER_DEFAULTS.onDeadLetter),
    fromBeginning,
    handlerAttempts: integerOption(
      "handlerAttempts",
      options.handlerAttempts,
      CONSUMER_DEFAULTS.handlerAttempts,
      1,
      100,
    ),
    batchSize: integerOption("batchSize", options.batchSize, CONSUMER_DEFAULTS.batchSize, 1, 10_000),
    partitionsConsumedConcurrently: integerOption(
      "partitionsConsumedConcurrently",
      options.partitionsConsumedConcurrently,
      CONSUMER_DEFAULTS.partitionsConsumedConcurrently,
      1,
      1000,
    ),
    sessionTimeoutMs,
    heartbeatIntervalMs,
    maxWaitTimeMs: integerOption("maxWaitTimeMs", options.maxWaitTimeMs, CONSUMER_DEFAULTS.maxWaitTimeMs, 10, 30_000),
    replayPollMs: integerOption("replayPollMs", options.replayPollMs, CONSUMER_DEFAULTS.replayPollMs, 50, 3_600_000),
    lagIntervalMs: integerOption(
      "lagIntervalMs",
      options.lagIntervalMs,
      CONSUMER_DEFAULTS.lagIntervalMs,
      100,
      3_600_000,
    ),
  });
}
