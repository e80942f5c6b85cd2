import { Redacted } from "effect";
import { type Admin, Kafka, logLevel, type Producer, type SASLOptions, type Transaction } from "kafkajs";
import { describeError } from "../errors.ts";
import type { ResolvedKafkaOptions } from "../options.ts";
import { classifyKafkaJsError } from "./classify-kafkajs-error.ts";
import {
  type OutboundMessage,
  type ProducerHooks,
  type ProducerPort,
  ProducerSendError,
  type TopicDescription,
  type TransactionalProducerPort,
} from "./producer-port.ts";

/** Kafka's default `max.message.bytes` (1 MiB + record batch overhead), used if the broker does not say. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;

function toError(error: unknown, fallbackReason = classifyKafkaJsError(error)): ProducerSendError {
  if (error instanceof ProducerSendError) return error;
  return new ProducerSendError({ reason: fallbackReason, message: describeError(error), cause: error });
}

/**
 * The kafkajs adapter of {@link ProducerPort}: an idempotent producer (acks=all,
 * `maxInFlightRequests: 1`) with kafkajs's default partitioner, which is Kafka's murmur2
 * (`toPositive(murmur2(key)) % partitions`). kafkajs retries a failed request twice (100, 200 ms)
 * before the relay's shard back-off takes over. After a failure the relay calls `reset`, so the next
 * send starts a new producer session (a fresh producer id), which also recovers from broker restarts.
 */
export class KafkaJsProducer implements ProducerPort {
  readonly #kafka: Kafka;
  readonly #requestTimeoutMs: number;
  readonly #transactionTimeoutMs: number;
  #producer: Producer | undefined;
  #hooks: ProducerHooks | undefined;
  #connected = false;

  constructor(options: ResolvedKafkaOptions) {
    const ssl = options.ssl === undefined ? undefined : Redacted.value(options.ssl);
    const sasl = options.sasl === undefined ? undefined : Redacted.value(options.sasl);
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#transactionTimeoutMs = options.transactionTimeoutMs;
    this.#kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      connectionTimeout: options.connectionTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      // kafkajs logs would be the one place a misconfigured client could print details; the relay
      // reports failures through typed events instead.
      logLevel: logLevel.NOTHING,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
      ...(ssl !== undefined ? { ssl } : {}),
      ...(sasl !== undefined ? { sasl: sasl as SASLOptions } : {}),
    });
  }

  get connected(): boolean {
    return this.#connected;
  }

  async connect(hooks: ProducerHooks): Promise<void> {
    this.#hooks = hooks;
    if (this.#producer !== undefined) return;
    const producer = this.#kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    });
    producer.on(producer.events.CONNECT, () => {
      if (this.#producer !== producer) return;
      this.#connected = true;
      this.#hooks?.onConnected();
    });
    producer.on(producer.events.DISCONNECT, () => {
      if (this.#producer !== producer || !this.#connected) return;
      this.#connected = false;
      this.#hooks?.onDisconnected();
    });
    this.#producer = producer;
    try {
      await producer.connect();
    } catch (error) {
      this.#producer = undefined;
      await producer.disconnect().catch(() => undefined);
      throw toError(error, "connection");
    }
  }

  async send(topic: string, messages: readonly OutboundMessage[]): Promise<void> {
    if (this.#producer === undefined) {
      if (this.#hooks === undefined) throw new ProducerSendError({ reason: "connection", message: "not connected" });
      await this.connect(this.#hooks);
    }
    try {
      await this.#producer!.send({
        topic,
        acks: -1,
        timeout: this.#requestTimeoutMs,
        messages: messages.map((m) => ({ key: m.key, value: m.value, headers: { ...m.headers } })),
      });
    } catch (error) {
      throw toError(error);
    }
  }

  async reset(): Promise<void> {
    const producer = this.#producer;
    this.#producer = undefined;
    if (producer === undefined) return;
    const wasConnected = this.#connected;
    this.#connected = false;
    await producer.disconnect().catch(() => undefined);
    if (wasConnected) this.#hooks?.onDisconnected();
  }

  async describeTopics(topics: readonly string[]): Promise<readonly TopicDescription[]> {
    const admin: Admin = this.#kafka.admin({ retry: { retries: 3 } });
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
    return new KafkaJsTransactionalProducer(this.#kafka, transactionalId, {
      requestTimeoutMs: this.#requestTimeoutMs,
      transactionTimeoutMs: this.#transactionTimeoutMs,
    });
  }
}

/**
 * The kafkajs adapter bound to one `transactional.id`: `connect` runs InitProducerId (fencing every
 * earlier producer of the id) and opens a transaction locally; sends join it; `commitTransaction`
 * ends it. A failed send or commit aborts it.
 */
class KafkaJsTransactionalProducer implements TransactionalProducerPort {
  readonly transactionalId: string;
  readonly #kafka: Kafka;
  readonly #settings: { readonly requestTimeoutMs: number; readonly transactionTimeoutMs: number };
  #producer: Producer | undefined;
  #transaction: Transaction | undefined;
  #connected = false;

  constructor(
    kafka: Kafka,
    transactionalId: string,
    settings: { readonly requestTimeoutMs: number; readonly transactionTimeoutMs: number },
  ) {
    this.#kafka = kafka;
    this.transactionalId = transactionalId;
    this.#settings = settings;
  }

  get connected(): boolean {
    return this.#connected;
  }

  async connect(_hooks: ProducerHooks): Promise<void> {
    if (this.#producer !== undefined) return;
    const producer = this.#kafka.producer({
      transactionalId: this.transactionalId,
      transactionTimeout: this.#settings.transactionTimeoutMs,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    });
    this.#producer = producer;
    try {
      await producer.connect();
      // The first transaction initialises the transactional id: from here on, older producers of it are fenced.
      this.#transaction = await producer.transaction();
      this.#connected = true;
    } catch (error) {
      await this.reset();
      throw toError(error, classifyKafkaJsError(error) === "unknown" ? "connection" : classifyKafkaJsError(error));
    }
  }

  async send(topic: string, messages: readonly OutboundMessage[]): Promise<void> {
    if (this.#producer === undefined)
      await this.connect({ onConnected: () => undefined, onDisconnected: () => undefined });
    try {
      this.#transaction ??= await this.#producer!.transaction();
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
    const producer = this.#producer;
    this.#producer = undefined;
    this.#transaction = undefined;
    this.#connected = false;
    await producer?.disconnect().catch(() => undefined);
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
