import { Redacted } from "effect";
import {
  type Admin,
  type ISocketFactory,
  Kafka,
  type KafkaConfig,
  logLevel,
  type Producer,
  type SASLOptions,
  type Transaction,
} from "kafkajs";
import net from "node:net";
import tls from "node:tls";
import { describeError } from "../errors.ts";
import type { ResolvedKafkaOptions } from "../options.ts";
import { classifyKafkaJsError } from "./classify-kafkajs-error.ts";
import { PRODUCE_API_KEY, ProduceGate, requestApiKey } from "./produce-gate.ts";
import {
  type OutboundMessage,
  type ProducerHooks,
  type ProducerPort,
  ProducerSendError,
  type SendDeadline,
  type TopicDescription,
  type TransactionalProducerPort,
} from "./producer-port.ts";

/** Kafka's default `max.message.bytes` (1 MiB + record batch overhead), used if the broker does not say. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;

/** Retries inside kafkajs (100, 200 ms) before the relay's shard back-off; idempotence needs at least 1. */
const CLIENT_RETRY = { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 } as const;

function toError(error: unknown, fallbackReason = classifyKafkaJsError(error)): ProducerSendError {
  if (error instanceof ProducerSendError) return error;
  return new ProducerSendError({ reason: fallbackReason, message: describeError(error), cause: error });
}

/**
 * kafkajs's own socket factory (net or TLS, keepalive after 60 s), with every socket's `write` behind
 * `gate`: kafkajs writes each request with one `socket.write` when it leaves its request queue, so a
 * produce request is checked at the moment it would go out, whether it is a first try, a retry of
 * kafkajs's retrier, queued behind another request, or sent after a reconnect. A refused write
 * destroys the socket with an error instead, which fails the request at once.
 */
function gatedSocketFactory(gate: ProduceGate, sockets: Set<net.Socket>): ISocketFactory {
  return ({ host, port, ssl, onConnect }) => {
    const socket: net.Socket = ssl
      ? tls.connect(Object.assign({ host, port }, !net.isIP(host) ? { servername: host } : {}, ssl), onConnect)
      : net.connect({ host, port }, onConnect);
    socket.setKeepAlive(true, 60_000);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const write = socket.write;
    socket.write = function gatedWrite(this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
      if (requestApiKey(chunk) === PRODUCE_API_KEY && !gate.mayWriteProduce()) {
        socket.destroy(new Error("eventlane: produce request refused, the send deadline is closed"));
        return false;
      }
      return (write as (...args: unknown[]) => boolean).apply(this, [chunk, ...rest]);
    } as typeof socket.write;
    return socket;
  };
}

/** One kafkajs producer with its own client (so its own sockets) and its gate. */
interface Session {
  readonly producer: Producer;
  readonly gate: ProduceGate;
  /** The session's open sockets. */
  readonly sockets: Set<net.Socket>;
  /** Settles once the producer is connected (or failed to connect). */
  ready: Promise<void>;
}

function newSession(config: KafkaConfig, producerConfig: Parameters<Kafka["producer"]>[0]): Session {
  const gate = new ProduceGate();
  const sockets = new Set<net.Socket>();
  const kafka = new Kafka({ ...config, socketFactory: gatedSocketFactory(gate, sockets) });
  return { producer: kafka.producer(producerConfig), gate, sockets, ready: Promise.resolve() };
}

/**
 * Ends an abandoned session without waiting: its sockets are destroyed at once (kafkajs's own
 * `disconnect` waits for the requests in flight, up to the request timeout), then the producer is
 * disconnected, and once more when the client's send has settled (a retry may have reconnected; its
 * produce requests are refused by the gate, which has no send running any more).
 */
function abandonSession(session: Session, client: Promise<void>): void {
  for (const socket of session.sockets) socket.destroy(new Error("eventlane: send abandoned at the lease deadline"));
  const close = () => session.producer.disconnect().catch(() => undefined);
  void close();
  client.then(close, close);
}

/**
 * The kafkajs adapter of {@link ProducerPort}: an idempotent producer (acks=all,
 * `maxInFlightRequests: 1`) with kafkajs's default partitioner, which is Kafka's murmur2
 * (`toPositive(murmur2(key)) % partitions`). kafkajs retries a failed request twice (100, 200 ms)
 * before the relay's shard back-off takes over. After a failure the relay calls `reset`, so the next
 * send starts a new producer session (a fresh producer id), which also recovers from broker restarts.
 *
 * A send's {@link SendDeadline} is enforced on the socket: no produce request leaves once it is
 * closed (see `gatedSocketFactory`), and a refused or timed-out send closes its session.
 */
export class KafkaJsProducer implements ProducerPort {
  readonly #config: KafkaConfig;
  readonly #admin: Kafka;
  readonly #requestTimeoutMs: number;
  readonly #transactionTimeoutMs: number;
  #session: Session | undefined;
  #hooks: ProducerHooks | undefined;
  #connected = false;

  constructor(options: ResolvedKafkaOptions) {
    const ssl = options.ssl === undefined ? undefined : Redacted.value(options.ssl);
    const sasl = options.sasl === undefined ? undefined : Redacted.value(options.sasl);
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#transactionTimeoutMs = options.transactionTimeoutMs;
    this.#config = {
      clientId: options.clientId,
      brokers: [...options.brokers],
      connectionTimeout: options.connectionTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      // kafkajs logs would be the one place a misconfigured client could print details; the relay
      // reports failures through typed events instead.
      logLevel: logLevel.NOTHING,
      retry: CLIENT_RETRY,
      ...(ssl !== undefined ? { ssl } : {}),
      ...(sasl !== undefined ? { sasl: sasl as SASLOptions } : {}),
    };
    this.#admin = new Kafka(this.#config);
  }

  get connected(): boolean {
    return this.#connected;
  }

  async connect(hooks: ProducerHooks): Promise<void> {
    this.#hooks = hooks;
    await (this.#session ?? this.#open()).ready;
  }

  /** Starts a producer session (connecting in the background) and makes it the current one. */
  #open(): Session {
    const session = newSession(this.#config, {
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      retry: CLIENT_RETRY,
    });
    const { producer } = session;
    producer.on(producer.events.CONNECT, () => {
      if (this.#session !== session) return;
      this.#connected = true;
      this.#hooks?.onConnected();
    });
    producer.on(producer.events.DISCONNECT, () => {
      if (this.#session !== session || !this.#connected) return;
      this.#connected = false;
      this.#hooks?.onDisconnected();
    });
    this.#session = session;
    session.ready = producer.connect().catch(async (error: unknown) => {
      if (this.#session === session) this.#session = undefined;
      await producer.disconnect().catch(() => undefined);
      throw toError(error, "connection");
    });
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
            topic,
            acks: -1,
            timeout: this.#requestTimeoutMs,
            messages: messages.map((m) => ({ key: m.key, value: m.value, headers: { ...m.headers } })),
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

  /** Forgets the current session (the caller ends it). */
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
    await session.producer.disconnect().catch(() => undefined);
  }

  async describeTopics(topics: readonly string[]): Promise<readonly TopicDescription[]> {
    const admin: Admin = this.#admin.admin({ retry: { retries: 3 } });
    try {
      await admin.connect();
      const existing = new Set(await admin.listTopics());
      const present = topics.filter((t) => existing.has(t));
      const partitions = new Map<string, number>();
      const maxBytes = new Map<string, number>();
      if (present.length > 0) {
        const meta = await admin.fetchTopicMetadata({ topics: [...present] });
        for (const t of meta.topics) partitions.set(t.name, t.partitions.length);
        // ConfigResourceTypes.TOPIC = 2
        const configs = await admin.describeConfigs({
          includeSynonyms: false,
          resources: present.map((name) => ({ type: 2, name, configNames: ["max.message.bytes"] })),
        });
        for (const r of configs.resources) {
          const entry = r.configEntries.find((e) => e.configName === "max.message.bytes");
          if (entry !== undefined) maxBytes.set(r.resourceName, Number(entry.configValue));
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
      await admin.disconnect().catch(() => undefined);
    }
  }

  async disconnect(): Promise<void> {
    await this.reset();
  }

  transactional(transactionalId: string): TransactionalProducerPort {
    return new KafkaJsTransactionalProducer(this.#config, transactionalId, {
      requestTimeoutMs: this.#requestTimeoutMs,
      transactionTimeoutMs: this.#transactionTimeoutMs,
    });
  }
}

/**
 * The kafkajs adapter bound to one `transactional.id`: `connect` runs InitProducerId (fencing every
 * earlier producer of the id) and opens a transaction locally; sends join it; `commitTransaction`
 * ends it. A failed send or commit aborts it. Sends are gated by their deadline like the idempotent
 * adapter's.
 */
class KafkaJsTransactionalProducer implements TransactionalProducerPort {
  readonly transactionalId: string;
  readonly #config: KafkaConfig;
  readonly #settings: { readonly requestTimeoutMs: number; readonly transactionTimeoutMs: number };
  #session: Session | undefined;
  #transaction: Transaction | undefined;
  #connected = false;

  constructor(
    config: KafkaConfig,
    transactionalId: string,
    settings: { readonly requestTimeoutMs: number; readonly transactionTimeoutMs: number },
  ) {
    this.#config = config;
    this.transactionalId = transactionalId;
    this.#settings = settings;
  }

  get connected(): boolean {
    return this.#connected;
  }

  async connect(_hooks: ProducerHooks): Promise<void> {
    await (this.#session ?? this.#open()).ready;
  }

  #open(): Session {
    const session = newSession(this.#config, {
      transactionalId: this.transactionalId,
      transactionTimeout: this.#settings.transactionTimeoutMs,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      retry: CLIENT_RETRY,
    });
    this.#session = session;
    session.ready = (async () => {
      try {
        await session.producer.connect();
        // The first transaction initialises the transactional id: from here on, older producers of it are fenced.
        const transaction = await session.producer.transaction();
        if (this.#session === session) {
          this.#transaction = transaction;
          this.#connected = true;
        }
      } catch (error) {
        if (this.#session === session) await this.reset();
        else await session.producer.disconnect().catch(() => undefined);
        const reason = classifyKafkaJsError(error);
        throw toError(error, reason === "unknown" ? "connection" : reason);
      }
    })();
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
          this.#transaction ??= await session.producer.transaction();
          await this.#transaction.send({
            topic,
            acks: -1,
            timeout: this.#settings.requestTimeoutMs,
            messages: messages.map((m) => ({ key: m.key, value: m.value, headers: { ...m.headers } })),
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
          this.#connected = false;
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
    if (transaction === undefined || !transaction.isActive()) return;
    try {
      await transaction.abort();
    } catch {
      // Fenced, or the broker is gone: a new producer session starts with the next send, and
      // InitProducerId aborts whatever this transaction left open.
      await this.reset();
    }
  }

  async reset(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    this.#transaction = undefined;
    this.#connected = false;
    await session?.producer.disconnect().catch(() => undefined);
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
