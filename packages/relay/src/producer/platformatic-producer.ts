import { murmur2 } from "@eventlane/core/internal";
import {
  Admin,
  ConfigResourceTypes,
  type Connection,
  connectionsApiChannel,
  type Partitioner,
  Producer,
  type ProducerOptions,
  type SASLOptions,
  stringSerializers,
} from "@platformatic/kafka";
import { Redacted } from "effect";
import type { ConnectionOptions } from "node:tls";
import type { ResolvedKafkaOptions } from "../options.ts";
import { classifyPlatformaticError, describePlatformaticError } from "./classify-platformatic-error.ts";
import { PRODUCE_API_KEY, ProduceGate } from "./produce-gate.ts";
import {
  type OutboundMessage,
  type ProducerHooks,
  type ProducerPort,
  ProducerSendError,
  type PublishFailureReason,
  type SendDeadline,
  type TopicDescription,
  type TransactionalProducerPort,
} from "./producer-port.ts";

/** Kafka's default `max.message.bytes` (1 MiB + record batch overhead), used if the broker does not say. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;

/**
 * Retries inside the client before the relay's shard back-off takes over: 2, like the kafkajs adapter.
 * Must stay above 1: an idempotent @platformatic/kafka producer turns `retries <= 1` into unlimited.
 */
const CLIENT_RETRIES = 2;
/** Delay before a client retry (ms): 100, 200, then capped at 1000, as kafkajs's retry of the other adapter. */
const retryDelay = (_client: unknown, _operation: string, attempt: number): number =>
  Math.min(100 * 2 ** (attempt - 1), 1000);

const SASL_MECHANISMS = {
  plain: "PLAIN",
  "scram-sha-256": "SCRAM-SHA-256",
  "scram-sha-512": "SCRAM-SHA-512",
} as const;

type Strings = ProducerOptions<string, string, string, string>;

/**
 * Kafka's default partitioner: `toPositive(murmur2(keyBytes)) % partitions`. @platformatic/kafka's
 * own default takes `murmur2 >>> 0` instead of `& 0x7fffffff`, which puts about half of all keys on
 * another partition than Java clients and kafkajs whenever the partition count is not a power of two,
 * so the hash is Eventlane's. The client reduces the result `% partitionsCount` itself.
 */
const kafkaPartitioner: Partitioner<string, string, string, string> = (_message, key) =>
  key === undefined ? 0 : murmur2(key) & 0x7fffffff;

function toError(error: unknown, reason: PublishFailureReason = classifyPlatformaticError(error)): ProducerSendError {
  if (error instanceof ProducerSendError) return error;
  return new ProducerSendError({ reason, message: describePlatformaticError(error), cause: error });
}

type StringProducer = Producer<string, string, string, string>;

/** The gate of each connection our producer sessions opened (a connection belongs to one session). */
const gatedConnections = new WeakMap<Connection, ProduceGate>();
/** Sessions not yet closed: while there is one, {@link gateRequest} listens on the client's channel. */
let openSessions = 0;

/**
 * The client publishes `tracing:plt:kafka:connections:api:start` synchronously in
 * `Connection#sendRequest`, right before `socket.write(request)`, for every request it writes: a first
 * try, a retry of its own retry loop, the re-send after a metadata refresh or a producer id recovery,
 * the request on a connection it has just opened. A produce request of one of our sessions whose gate
 * refuses has its socket destroyed there, so the write that follows finds a destroyed socket and
 * sends nothing; the request fails when the connection reports the close. (Destroyed without an
 * error: the connection forwards a socket error as its own `error` event, which has one listener.)
 */
function gateRequest(message: unknown): void {
  const event = message as { readonly connection?: Connection; readonly apiKey?: unknown };
  if (event.apiKey !== PRODUCE_API_KEY || event.connection === undefined) return;
  const gate = gatedConnections.get(event.connection);
  if (gate === undefined || gate.mayWriteProduce()) return;
  event.connection.socket?.destroy();
}

/** One producer with its gate. `release` ends the gate's watch once the client can write no more. */
interface Session {
  readonly producer: StringProducer;
  readonly gate: ProduceGate;
  readonly release: () => void;
  /** Settles once the producer is initialised (or failed to). */
  ready: Promise<void>;
}

function newSession(producer: StringProducer): Session {
  const gate = new ProduceGate();
  // The pool announces a connection before it connects, so before any request is written on it.
  producer.connections.on("connecting", ({ connection }) => gatedConnections.set(connection, gate));
  if (openSessions++ === 0) connectionsApiChannel.start.subscribe(gateRequest);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (--openSessions === 0) connectionsApiChannel.start.unsubscribe(gateRequest);
  };
  return { producer, gate, release, ready: Promise.resolve() };
}

/** Closes a session (a closed client never reconnects). */
async function closeSession(session: Session): Promise<void> {
  await session.producer.close(true).catch(() => undefined);
  session.release();
}

/**
 * Ends an abandoned session without waiting for it: closing the client fails its pending retries at
 * once; its gate keeps watching until the client's send has settled too.
 */
function abandonSession(session: Session, client: Promise<void>): void {
  const closed = session.producer.close(true).catch(() => undefined);
  Promise.all([closed, client.catch(() => undefined)]).then(session.release, session.release);
}

/**
 * The @platformatic/kafka adapter of {@link ProducerPort}: an idempotent producer (acks=all, one
 * request in flight per broker, which the client enforces for idempotent producers) with Kafka's
 * murmur2 partitioning on the UTF-8 bytes of the key, the same partitions as the kafkajs adapter.
 * The client retries a failed request twice (100, 200 ms) before the relay's shard back-off takes
 * over. After a failed send the client drops its producer id by itself; the relay's `reset` also
 * closes the connections, so the next send starts a fresh producer session either way.
 *
 * A send's {@link SendDeadline} is enforced where the client writes to its socket: no produce request
 * goes out once it is closed (see `gateRequest`), and a refused or timed-out send closes its session.
 *
 * Needs Node.js >= 22.22 or >= 24.6 (the client's own requirement) and `@platformatic/kafka` installed.
 */
export class PlatformaticProducer implements ProducerPort {
  readonly #base: Omit<Strings, "serializers">;
  #session: Session | undefined;
  #hooks: ProducerHooks | undefined;
  #connected = false;

  constructor(options: ResolvedKafkaOptions) {
    const ssl = options.ssl === undefined ? undefined : Redacted.value(options.ssl);
    const sasl = options.sasl === undefined ? undefined : Redacted.value(options.sasl);
    const tls: ConnectionOptions | undefined = ssl === undefined || ssl === false ? undefined : ssl === true ? {} : ssl;
    this.#base = {
      clientId: options.clientId,
      bootstrapBrokers: [...options.brokers],
      connectTimeout: options.connectionTimeoutMs,
      // Client side: how long to wait for any response. Broker side (`timeout`): how long the leader
      // waits for the in-sync replicas of a produce request. kafkajs's adapter uses the same value for both.
      requestTimeout: options.requestTimeoutMs,
      timeout: options.requestTimeoutMs,
      retries: CLIENT_RETRIES,
      retryDelay,
      autocreateTopics: false,
      ...(tls !== undefined
        ? {
            tls,
            // SNI and certificate check against the broker's host unless the caller named a server.
            tlsServerName: typeof tls.servername === "string" ? tls.servername : true,
          }
        : {}),
      ...(sasl !== undefined
        ? {
            sasl: {
              mechanism: SASL_MECHANISMS[sasl.mechanism],
              username: sasl.username,
              password: sasl.password,
            } satisfies SASLOptions,
          }
        : {}),
    };
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Creates the producer and obtains its producer id (which also proves the brokers are reachable). */
  async connect(hooks: ProducerHooks): Promise<void> {
    this.#hooks = hooks;
    await (this.#session ?? this.#open()).ready;
  }

  #open(): Session {
    const session = newSession(
      new Producer<string, string, string, string>({
        ...this.#base,
        idempotent: true,
        acks: -1,
        maxInflights: 1,
        partitioner: kafkaPartitioner,
        serializers: stringSerializers,
      }),
    );
    this.#session = session;
    session.ready = session.producer.initIdempotentProducer({}).then(
      () => {
        if (this.#session !== session) return;
        this.#connected = true;
        this.#hooks?.onConnected();
      },
      async (error: unknown) => {
        if (this.#session === session) this.#session = undefined;
        await closeSession(session);
        throw toError(error, "connection");
      },
    );
    session.ready.catch(() => undefined);
    return session;
  }

  async send(topic: string, messages: readonly OutboundMessage[], deadline?: SendDeadline): Promise<void> {
    if (this.#session === undefined && this.#hooks === undefined) {
      throw new ProducerSendError({ reason: "connection", message: "not connected" });
    }
    const session = this.#session ?? this.#open();
    await session.gate.run(
      deadline,
      async () => {
        await session.ready;
        try {
          await session.producer.send({
            acks: -1,
            messages: messages.map((m) => ({
              topic,
              key: m.key,
              // `undefined` is written as a null value (a tombstone), as kafkajs writes `null`.
              ...(m.value !== null ? { value: m.value } : {}),
              headers: { ...m.headers },
            })),
          });
        } catch (error) {
          throw toError(error);
        }
      },
      (client) => {
        if (this.#session === session) this.#drop();
        abandonSession(session, client);
      },
    );
  }

  /** Forgets the current session (the caller closes it). */
  #drop(): void {
    this.#session = undefined;
    const wasConnected = this.#connected;
    this.#connected = false;
    if (wasConnected) this.#hooks?.onDisconnected();
  }

  async reset(): Promise<void> {
    const session = this.#session;
    if (session === undefined) return;
    this.#drop();
    await closeSession(session);
  }

  async describeTopics(topics: readonly string[]): Promise<readonly TopicDescription[]> {
    const admin = new Admin({ ...this.#base, retries: 3 });
    try {
      const existing = new Set(await admin.listTopics());
      const present = topics.filter((t) => existing.has(t));
      const partitions = new Map<string, number>();
      const maxBytes = new Map<string, number>();
      if (present.length > 0) {
        const metadata = await admin.metadata({ topics: [...present] });
        for (const [name, topic] of metadata.topics) partitions.set(name, topic.partitionsCount);
        const configs = await admin.describeConfigs({
          resources: present.map((name) => ({
            resourceType: ConfigResourceTypes.TOPIC,
            resourceName: name,
            configurationKeys: ["max.message.bytes"],
          })),
        });
        for (const resource of configs) {
          const entry = resource.configs.find((c) => c.name === "max.message.bytes");
          if (entry?.value != null) maxBytes.set(resource.resourceName, Number(entry.value));
        }
      }
      return topics.map((name) => ({
        name,
        exists: existing.has(name),
        partitions: partitions.get(name) ?? 0,
        maxMessageBytes: maxBytes.get(name) ?? DEFAULT_MAX_MESSAGE_BYTES,
      }));
    } catch (error) {
      throw toError(error);
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  async disconnect(): Promise<void> {
    await this.reset();
  }

  transactional(transactionalId: string): TransactionalProducerPort {
    return new PlatformaticTransactionalProducer(this.#base, transactionalId);
  }
}

type StringTransaction = Awaited<ReturnType<StringProducer["beginTransaction"]>>;

/**
 * The @platformatic/kafka adapter bound to one `transactional.id`: `connect` begins a transaction,
 * which runs InitProducerId for the id (fencing every earlier producer of it); sends join it;
 * `commitTransaction` ends it. A failed send or commit aborts it. Sends are gated by their deadline
 * like the idempotent adapter's.
 */
class PlatformaticTransactionalProducer implements TransactionalProducerPort {
  readonly transactionalId: string;
  readonly #base: Omit<Strings, "serializers">;
  #session: Session | undefined;
  #transaction: StringTransaction | undefined;

  constructor(base: Omit<Strings, "serializers">, transactionalId: string) {
    this.#base = base;
    this.transactionalId = transactionalId;
  }

  get connected(): boolean {
    return this.#session !== undefined;
  }

  async connect(_hooks: ProducerHooks): Promise<void> {
    await (this.#session ?? this.#open()).ready;
  }

  #open(): Session {
    const session = newSession(
      new Producer<string, string, string, string>({
        ...this.#base,
        idempotent: true,
        acks: -1,
        maxInflights: 1,
        transactionalId: this.transactionalId,
        // A new producer session: without -1 / -1 the client sends producer id 0, epoch 0, which the
        // broker reads as resuming an older session and answers with PRODUCER_FENCED once the id has one.
        producerId: -1n,
        producerEpoch: -1,
        partitioner: kafkaPartitioner,
        serializers: stringSerializers,
      }),
    );
    this.#session = session;
    session.ready = session.producer.beginTransaction().then(
      (transaction) => {
        if (this.#session === session) this.#transaction = transaction;
      },
      async (error: unknown) => {
        if (this.#session === session) await this.reset();
        else await closeSession(session);
        const reason = classifyPlatformaticError(error);
        throw toError(error, reason === "unknown" ? "connection" : reason);
      },
    );
    session.ready.catch(() => undefined);
    return session;
  }

  async send(topic: string, messages: readonly OutboundMessage[], deadline?: SendDeadline): Promise<void> {
    const session = this.#session ?? this.#open();
    await session.gate.run(
      deadline,
      async () => {
        await session.ready;
        try {
          this.#transaction ??= await session.producer.beginTransaction();
          await this.#transaction.send({
            acks: -1,
            messages: messages.map((m) => ({
              topic,
              key: m.key,
              ...(m.value !== null ? { value: m.value } : {}),
              headers: { ...m.headers },
            })),
          });
        } catch (error) {
          await this.abortTransaction();
          throw toError(error);
        }
      },
      (client) => {
        // The open transaction is left to the broker: the successor's InitProducerId (or the
        // transaction timeout) aborts it.
        if (this.#session === session) {
          this.#session = undefined;
          this.#transaction = undefined;
        }
        abandonSession(session, client);
      },
    );
  }

  async commitTransaction(): Promise<void> {
    const transaction = this.#transaction;
    if (transaction === undefined) return;
    try {
      await transaction.commit();
      this.#transaction = undefined;
    } catch (error) {
      await this.abortTransaction();
      throw toError(error);
    }
  }

  async abortTransaction(): Promise<void> {
    const transaction = this.#transaction;
    this.#transaction = undefined;
    if (transaction === undefined || transaction.completed) return;
    try {
      await transaction.abort();
    } catch {
      // Fenced, or the broker is gone: the next send starts a new producer session, whose
      // InitProducerId aborts whatever this transaction left open.
      await this.reset();
    }
  }

  async reset(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    this.#transaction = undefined;
    if (session !== undefined) await closeSession(session);
  }

  describeTopics(): Promise<readonly TopicDescription[]> {
    return Promise.reject(
      new ProducerSendError({ reason: "unknown", message: "a shard producer does not describe topics" }),
    );
  }

  async disconnect(): Promise<void> {
    await this.abortTransaction();
    await this.reset();
  }
}
