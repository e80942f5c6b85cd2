import { type DomainEvent, type EventDefinition, type EventOf, InvalidOptionError } from "@eventlane/core";
import type { Kafka } from "kafkajs";
import type { Kysely, Transaction } from "kysely";
import type { PositionKind } from "./message/decode-message.ts";
import { type ConsumerTableNames, resolveConsumerTableNames } from "./schema/names.ts";

/** Kafka isolation levels; `read_committed` hides records of aborted (and open) producer transactions. */
export const IsolationLevels = ["read_committed", "read_uncommitted"] as const;
export type IsolationLevel = (typeof IsolationLevels)[number];

/** What to do when a key's position jumps past the next expected one. */
export const GapPolicies = ["continue", "refuse"] as const;
export type GapPolicy = (typeof GapPolicies)[number];

/** Where a message came from and what its headers said, passed to every handler. */
export interface EventContext<DB> {
  /** The consumer's open transaction: write your effects here; the watermark is updated in it too. */
  readonly trx: Transaction<DB>;
  readonly topic: string;
  readonly partition: number;
  /** The record's offset (a string, as kafkajs gives it). */
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
}

/** Applies one decoded event inside the consumer's transaction. Throw to roll it back (it is retried). */
export type EventHandler<DB, E extends DomainEvent> = (event: E, context: EventContext<DB>) => Promise<void> | void;

/**
 * One optional handler per event type of `events`. A known event without a handler is acknowledged
 * (its watermark advances) and counted as ignored; an unknown one is dead-lettered.
 */
export type EventHandlers<DB, Defs extends readonly EventDefinition[]> = {
  readonly [D in Defs[number] as D["type"]]?: EventHandler<DB, EventOf<D>>;
};

/** Options of {@link createConsumer}. */
export interface ConsumerOptions<DB, Defs extends readonly EventDefinition[]> {
  /** A kafkajs client; the consumer creates its own `consumer()` from it and never touches others. */
  readonly kafka: Kafka;
  /** The consumer's own database; handlers, watermarks and dead letters share one transaction here. */
  readonly db: Kysely<DB>;
  /** The Kafka consumer group. */
  readonly groupId: string;
  /** The event definitions this consumer decodes (the same ones the writers use). */
  readonly events: Defs;
  /** What to do with each event type. */
  readonly handlers: NoInfer<EventHandlers<DB, Defs>>;
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
   * Partitions processed in parallel (each one in order).
   * @default 1
   */
  readonly partitionsConsumedConcurrently?: number;
  /**
   * Kafka group session timeout: how long a dead consumer keeps its partitions before a rebalance.
   * @default 30000
   */
  readonly sessionTimeoutMs?: number;
  /**
   * Longest time a fetch waits for new records.
   * @default 500
   */
  readonly maxWaitTimeMs?: number;
}

/** {@link ConsumerOptions} validated once and frozen. */
export interface ResolvedConsumerOptions<DB, Defs extends readonly EventDefinition[]> {
  readonly kafka: Kafka;
  readonly db: Kysely<DB>;
  readonly groupId: string;
  readonly name: string;
  readonly events: Defs;
  readonly definitions: ReadonlyMap<string, EventDefinition>;
  readonly handlers: ReadonlyMap<string, EventHandler<DB, DomainEvent>>;
  readonly topics: readonly string[];
  readonly names: ConsumerTableNames;
  readonly isolation: IsolationLevel;
  readonly onGap: GapPolicy;
  readonly fromBeginning: boolean;
  readonly handlerAttempts: number;
  readonly partitionsConsumedConcurrently: number;
  readonly sessionTimeoutMs: number;
  readonly maxWaitTimeMs: number;
}

const KNOWN = new Set([
  "kafka",
  "db",
  "groupId",
  "events",
  "handlers",
  "topics",
  "name",
  "schema",
  "isolation",
  "onGap",
  "fromBeginning",
  "handlerAttempts",
  "partitionsConsumedConcurrently",
  "sessionTimeoutMs",
  "maxWaitTimeMs",
]);

const fail = (option: string, message: string): never => {
  throw new InvalidOptionError({ option, message: `${option}: ${message}` });
};

function nonEmptyString(option: string, value: unknown, max = 249): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    fail(option, `must be a non-empty string of at most ${max} characters; got ${JSON.stringify(value)}`);
  }
  return value as string;
}

function integer(option: string, value: unknown, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    fail(option, `must be an integer in [${min}, ${max}]; got ${JSON.stringify(value)}`);
  }
  return v as number;
}

function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
  const v = value ?? fallback;
  if (!allowed.includes(v as T)) fail(option, `must be one of ${allowed.join(", ")}; got ${JSON.stringify(value)}`);
  return v as T;
}

/**
 * Validates and resolves consumer options once. Throws `InvalidOptionError` (code
 * `EVENTLANE_INVALID_OPTION`, `option` names the field) or `InvalidIdentifierError` for `schema`.
 */
export function resolveConsumerOptions<DB, Defs extends readonly EventDefinition[]>(
  options: ConsumerOptions<DB, Defs>,
): ResolvedConsumerOptions<DB, Defs> {
  if (typeof options !== "object" || options === null) fail("options", "must be an object");
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) fail(key, `unknown consumer option; known: ${[...KNOWN].join(", ")}`);
  }
  const kafka = options.kafka as Partial<Kafka> | undefined;
  if (typeof kafka?.consumer !== "function" || typeof kafka.admin !== "function") {
    fail("kafka", "must be a kafkajs Kafka instance");
  }
  const db = options.db as Partial<Kysely<DB>> | undefined;
  if (typeof db?.transaction !== "function" || typeof db.selectFrom !== "function") {
    fail("db", "must be a Kysely instance");
  }
  if ((db as { isTransaction?: boolean }).isTransaction === true) {
    fail("db", "must be a Kysely instance, not a transaction: the consumer opens one per message");
  }
  const groupId = nonEmptyString("groupId", options.groupId);
  const name = nonEmptyString("name", options.name ?? groupId);

  if (!Array.isArray(options.events) || options.events.length === 0) {
    fail("events", "must be a non-empty array of event definitions");
  }
  const definitions = new Map<string, EventDefinition>();
  for (const def of options.events) {
    if (typeof def?.type !== "string" || typeof def.decode !== "function") {
      fail("events", "every entry must be an event definition from defineEvent()");
    }
    if (definitions.has(def.type)) fail("events", `event type "${def.type}" is listed twice`);
    definitions.set(def.type, def);
  }
  if (typeof options.handlers !== "object" || options.handlers === null) {
    fail("handlers", "must be an object of handlers by event type");
  }
  const handlers = new Map<string, EventHandler<DB, DomainEvent>>();
  for (const [type, handler] of Object.entries(options.handlers as Record<string, unknown>)) {
    if (!definitions.has(type)) {
      fail("handlers", `"${type}" is not the type of any definition in events (${[...definitions.keys()].join(", ")})`);
    }
    if (typeof handler !== "function") fail(`handlers.${type}`, "must be a function");
    handlers.set(type, handler as EventHandler<DB, DomainEvent>);
  }

  const topics = options.topics ?? [...new Set(options.events.map((d) => d.route.topic))];
  if (!Array.isArray(topics) || topics.length === 0) fail("topics", "must be a non-empty array of topic names");
  for (const t of topics) nonEmptyString("topics", t);

  const names = resolveConsumerTableNames(options.schema === undefined ? {} : { schema: options.schema });
  const fromBeginning = options.fromBeginning ?? true;
  if (typeof fromBeginning !== "boolean") fail("fromBeginning", `must be a boolean; got ${typeof fromBeginning}`);

  return Object.freeze({
    kafka: options.kafka,
    db: options.db,
    groupId,
    name,
    events: options.events,
    definitions,
    handlers,
    topics: Object.freeze([...topics]),
    names,
    isolation: oneOf("isolation", options.isolation, IsolationLevels, "read_committed"),
    onGap: oneOf("onGap", options.onGap, GapPolicies, "continue"),
    fromBeginning,
    handlerAttempts: integer("handlerAttempts", options.handlerAttempts, 3, 1, 100),
    partitionsConsumedConcurrently: integer(
      "partitionsConsumedConcurrently",
      options.partitionsConsumedConcurrently,
      1,
      1,
      1000,
    ),
    sessionTimeoutMs: integer("sessionTimeoutMs", options.sessionTimeoutMs, 30_000, 6_000, 300_000),
    maxWaitTimeMs: integer("maxWaitTimeMs", options.maxWaitTimeMs, 500, 10, 30_000),
  });
}
