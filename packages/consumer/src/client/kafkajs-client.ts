import { Redacted } from "effect";
import {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  Kafka,
  type KafkaMessage,
  logLevel,
} from "kafkajs";
import type {
  ChunkSink,
  ConsumedRecord,
  ConsumerClient,
  ConsumerClientSettings,
  PartitionOffset,
  ResolvedConsumerKafkaOptions,
  TopicPartition,
} from "./consumer-client.ts";

const id = (topic: string, partition: number) => `${topic}\u0000${partition}`;

function headersOf(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue;
    const first = Array.isArray(v) ? v[0] : v;
    // A header with a null value has no string: it is left out.
    if (first != null) out[k] = first.toString();
  }
  return out;
}

const toRecord = (m: KafkaMessage): ConsumedRecord => ({
  offset: m.offset,
  key: m.key ?? null,
  value: m.value ?? null,
  headers: headersOf(m.headers),
  timestamp: Number(m.timestamp),
});

/**
 * The kafkajs adapter of {@link ConsumerClient}: `eachBatch` with auto-commit and auto-resolve off,
 * `partitionsConsumedConcurrently` partitions at once, each fetched batch cut into chunks of at most
 * `batchSize`. A chunk whose partition was revoked (a rebalance made the batch stale) is abandoned
 * and its offset never committed. When a batch ends in transaction markers (a transactional relay),
 * the offset after them is committed too, so `read_committed` consumers show no lag of one.
 */
export class KafkaJsConsumerClient implements ConsumerClient {
  readonly name = "kafkajs";
  readonly #kafka: Kafka;
  readonly #settings: ConsumerClientSettings;
  #consumer: Consumer | undefined;
  #admin: Admin | undefined;
  #assigned = new Set<string>();
  /** The highest offset sent in a commit, per partition: a lower one is never sent after it. */
  readonly #committed = new Map<string, bigint>();
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(kafka: ResolvedConsumerKafkaOptions, settings: ConsumerClientSettings) {
    const ssl = Redacted.value(kafka.ssl);
    const sasl = kafka.sasl === undefined ? undefined : Redacted.value(kafka.sasl);
    this.#settings = settings;
    this.#kafka = new Kafka({
      clientId: kafka.clientId,
      brokers: [...kafka.brokers],
      ssl,
      ...(sasl === undefined ? {} : { sasl: { ...sasl } as never }),
      connectionTimeout: kafka.connectionTimeoutMs,
      requestTimeout: kafka.requestTimeoutMs,
      logLevel: logLevel.NOTHING,
      // The consumer's own start-up loop backs off; inside the client, a few quick retries.
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 },
    });
  }

  async start(sink: ChunkSink): Promise<void> {
    const s = this.#settings;
    const consumer = this.#kafka.consumer({
      groupId: s.groupId,
      readUncommitted: s.isolation === "read_uncommitted",
      sessionTimeout: s.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: s.heartbeatIntervalMs ?? 3_000,
      maxWaitTimeInMs: s.maxWaitTimeMs,
      allowAutoTopicCreation: false,
    });
    this.#consumer = consumer;
    consumer.on(consumer.events.CRASH, (e) => sink.onError(e.payload.error));
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const now = new Set<string>();
      const parts: TopicPartition[] = [];
      for (const [topic, partitions] of Object.entries(e.payload.memberAssignment)) {
        for (const partition of partitions) {
          now.add(id(topic, partition));
          parts.push({ topic, partition });
        }
      }
      const revoked = [...this.#assigned].filter((k) => !now.has(k)).map(parse);
      const assigned = parts.filter((p) => !this.#assigned.has(id(p.topic, p.partition)));
      this.#assigned = now;
      if (revoked.length > 0) sink.onRevoked(revoked);
      if (assigned.length > 0) sink.onAssigned(assigned);
    });
    consumer.on(consumer.events.REBALANCING, () => {
      // Until the next GROUP_JOIN no partition is ours: chunks being applied stop before their commit.
      const revoked = [...this.#assigned].map(parse);
      this.#assigned = new Set();
      if (revoked.length > 0) sink.onRevoked(revoked);
    });
    // A batch of only transaction markers (or aborted records) never reaches eachBatch: commit past it.
    consumer.on(consumer.events.START_BATCH_PROCESS, (e) => {
      const p = e.payload;
      if (p.batchSize === 0 && this.#assigned.has(id(p.topic, p.partition))) {
        void this.commit({
          topic: p.topic,
          partition: p.partition,
          offset: (BigInt(p.lastOffset) + 1n).toString(),
        }).catch((error: unknown) => sink.onError(error));
      }
    });

    const joined = new Promise<void>((resolve) => {
      const off = consumer.on(consumer.events.GROUP_JOIN, () => {
        off();
        resolve();
      });
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [...s.topics], fromBeginning: s.fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: s.concurrency,
      eachBatch: (payload) => this.#eachBatch(payload, sink),
    });
    await joined;
  }

  async #eachBatch(
    { batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload,
    sink: ChunkSink,
  ): Promise<void> {
    const { topic, partition } = batch;
    const key = id(topic, partition);
    let rebalancing = false;
    const control = {
      isActive: () => !rebalancing && !this.#stopping && isRunning() && !isStale() && this.#assigned.has(key),
      // A heartbeat that fails says the group is rebalancing: the batch is given up, and the error
      // reaches kafkajs (below) so that it rejoins at once.
      heartbeat: async () => {
        try {
          await heartbeat();
        } catch (error) {
          rebalancing = true;
          throw error;
        }
      },
    };
    const records = batch.messages.map(toRecord);
    const size = this.#settings.batchSize;
    for (let i = 0; i < records.length; i += size) {
      if (!control.isActive()) return;
      const chunk = records.slice(i, i + size);
      try {
        await sink.applyChunk({ topic, partition, records: chunk }, control);
      } catch {
        // Abandoned (revoked or stopping): the new owner reads from the committed offset.
        return;
      }
      // kafkajs fetches on from the resolved offset: without this it delivers the chunk again.
      resolveOffset((chunk[chunk.length - 1] as ConsumedRecord).offset);
      await control.heartbeat();
    }
    const last = records[records.length - 1];
    const batchEnd = batch.lastOffset();
    if (last !== undefined && BigInt(batchEnd) > BigInt(last.offset) && control.isActive()) {
      resolveOffset(batchEnd);
      const offset = { topic, partition, offset: (BigInt(batchEnd) + 1n).toString() };
      await this.commit(offset).then(
        () => sink.onCommitted(offset),
        (e: unknown) => sink.onError(e),
      );
    }
  }

  async commit(offset: PartitionOffset): Promise<void> {
    if (this.#consumer === undefined) throw new Error("the kafkajs consumer is not started");
    const key = id(offset.topic, offset.partition);
    const next = BigInt(offset.offset);
    // Requests on the coordinator's connection are answered in order: checking at send time is enough.
    if ((this.#committed.get(key) ?? -1n) >= next) return;
    this.#committed.set(key, next);
    await this.#consumer.commitOffsets([{ topic: offset.topic, partition: offset.partition, offset: offset.offset }]);
  }

  async #connectedAdmin(): Promise<Admin> {
    if (this.#admin === undefined) {
      const admin = this.#kafka.admin();
      await admin.connect();
      this.#admin = admin;
    }
    return this.#admin;
  }

  async endOffsets(topics: readonly string[]): Promise<PartitionOffset[]> {
    const admin = await this.#connectedAdmin();
    const out: PartitionOffset[] = [];
    for (const topic of topics) {
      // ListOffsets at kafkajs's default isolation, read_committed: the last stable offset.
      for (const p of await admin.fetchTopicOffsets(topic)) {
        out.push({ topic, partition: p.partition, offset: p.offset });
      }
    }
    return out;
  }

  async committedOffsets(topics: readonly string[]): Promise<PartitionOffset[]> {
    const admin = await this.#connectedAdmin();
    const out: PartitionOffset[] = [];
    for (const t of await admin.fetchOffsets({ groupId: this.#settings.groupId, topics: [...topics] })) {
      for (const p of t.partitions) {
        // -1: the group has no offset for the partition yet.
        if (BigInt(p.offset) >= 0n) out.push({ topic: t.topic, partition: p.partition, offset: p.offset });
      }
    }
    return out;
  }

  stop(beforeLeave?: () => Promise<void>): Promise<void> {
    this.#stopping = true;
    this.#stopped ??= (async () => {
      await this.#admin?.disconnect().catch(() => undefined);
      // stop() ends the fetch loop and waits for the batches being processed; then the pending
      // commits; then disconnect() leaves the group.
      await this.#consumer?.stop().catch(() => undefined);
      await beforeLeave?.();
      await this.#consumer?.disconnect();
    })();
    return this.#stopped;
  }
}

function parse(key: string): TopicPartition {
  const at = key.lastIndexOf("\u0000");
  return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)) };
}
