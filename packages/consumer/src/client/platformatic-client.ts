import {
  Consumer,
  type ConsumerOptions,
  FetchIsolationLevels,
  findErrorBy,
  type Message,
  type MessagesStream,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  type SASLOptions,
} from "@platformatic/kafka";
import { Redacted } from "effect";
import type { ConnectionOptions } from "node:tls";
import { ConsumerStateError } from "../errors.ts";
import type {
  ChunkControl,
  ChunkSink,
  ConsumedRecord,
  ConsumerClient,
  ConsumerClientSettings,
  PartitionChunk,
  PartitionOffset,
  ResolvedConsumerKafkaOptions,
  TopicPartition,
} from "./consumer-client.ts";

type KafkaConsumer = Consumer<Buffer, Buffer, Buffer, Buffer>;
type RecordStream = MessagesStream<Buffer, Buffer, Buffer, Buffer>;
type KafkaMessage = Message<Buffer, Buffer, Buffer, Buffer>;
type KafkaConsumerOptions = ConsumerOptions<Buffer, Buffer, Buffer, Buffer>;
/** What `Consumer#commit` takes for one partition. */
type CommitEntry = Parameters<KafkaConsumer["commit"]>[0]["offsets"][number];

/** Retries inside the client before a stream is recreated or an error reaches the engine. */
const CLIENT_RETRIES = 3;
/** Delay before a client retry (ms): 100, 200, 400. */
const retryDelay = (_client: unknown, _operation: string, attempt: number): number =>
  Math.min(100 * 2 ** (attempt - 1), 1000);
/** Delay before the next attempt to recreate a dead stream or consumer (ms): 100, 200, 400, ... capped at 5000. */
const restartDelay = (failures: number): number => Math.min(100 * 2 ** (Math.max(failures, 1) - 1), 5000);
/** Kafka's default `max.partition.fetch.bytes`: one fetch brings at most 1 MiB of one partition (50 MiB in all). */
const MAX_BYTES_PER_PARTITION = 1_048_576;
/** How long `start()` waits for the first assignment once the group was joined (ms). */
const FIRST_ASSIGNMENT_TIMEOUT_MS = 60_000;
/**
 * How long (ms) the stream may stay paused while a worker is free and a partition has nothing to do
 * because the buffer is full of records of partitions whose chunk is still running (a handler in
 * back-off). Then those records are dropped and fetched again once their chunk is done.
 */
const STALL_MS = 1_000;

const SASL_MECHANISMS = {
  plain: "PLAIN",
  "scram-sha-256": "SCRAM-SHA-256",
  "scram-sha-512": "SCRAM-SHA-512",
} as const;

/** The key @platformatic/kafka's `MessagesStream#offsetsToFetch` uses for a partition. */
const partitionKey = (topic: string, partition: number): string => `${topic}:${partition}`;

const ignore = (): void => undefined;

/** The offsets of a `listOffsets` or `listCommittedOffsets` answer for one topic (indexed by partition). */
function partitionOffsets(topic: string, offsets: readonly bigint[] | undefined): PartitionOffset[] {
  const result: PartitionOffset[] = [];
  (offsets ?? []).forEach((offset, partition) => {
    result.push({ topic, partition, offset: offset.toString() });
  });
  return result;
}

function toRecord(message: KafkaMessage): ConsumedRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of message.headerEntries) {
    // A header with a null value has no string: it is left out, as a repeat of a header is.
    const bytes: Buffer | undefined = value;
    const key = name.toString("utf8");
    if (bytes != null && !Object.hasOwn(headers, key)) headers[key] = bytes.toString("utf8");
  }
  // With the client's no-op deserializers a null key or value arrives as `undefined`.
  const key: Buffer | undefined = message.key;
  const value: Buffer | undefined = message.value;
  return {
    offset: message.offset.toString(),
    key: key ?? null,
    value: value ?? null,
    headers,
    timestamp: Number(message.timestamp),
  };
}

/** One assigned (or once assigned) partition: its buffer, its fetch position and its chunk. */
class PartitionState {
  readonly topic: string;
  readonly partition: number;
  readonly key: string;
  owned = false;
  /** Grows on every revocation and assignment: a chunk stays active while the epoch it was taken in lasts. */
  epoch = 0;
  buffer: ConsumedRecord[] = [];
  /** The next offset to accept: records below it were buffered, applied or skipped already (a re-fetch). */
  nextOffset: bigint | undefined;
  /** Everything below this offset is applied and committed (or before the group's starting point). */
  committed: bigint | undefined;
  /** The stream's records stopped being contiguous (dropped to bound memory): a new stream must fetch again. */
  refetch = false;
  /** A chunk of this partition is in `applyChunk`. */
  busy = false;
  /** When the chunk in `applyChunk` started (ms since the epoch). */
  busySince = 0;
  queued = false;
  /** Commits of this partition, one at a time and in order, so a lower offset never lands after a higher one. */
  commits: Promise<void> = Promise.resolve();
  /** Where the records' leader epoch changed (KIP-320): committed with each offset. */
  #leaderEpochs: { readonly from: bigint; readonly epoch: number }[] = [];

  constructor(topic: string, partition: number) {
    this.topic = topic;
    this.partition = partition;
    this.key = partitionKey(topic, partition);
  }

  noteLeaderEpoch(offset: bigint, epoch: number): void {
    if (this.#leaderEpochs.at(-1)?.epoch !== epoch) this.#leaderEpochs.push({ from: offset, epoch });
  }

  /** The leader epoch of the record just before `offset` (what OffsetCommit expects), or -1. */
  leaderEpochBefore(offset: bigint): number {
    for (let i = this.#leaderEpochs.length - 1; i >= 0; i--) {
      const entry = this.#leaderEpochs[i]!;
      if (entry.from < offset) return entry.epoch;
    }
    return -1;
  }

  /** Forgets epochs of records at or after `offset` (dropped, fetched again later). */
  forgetFrom(offset: bigint): void {
    this.#leaderEpochs = this.#leaderEpochs.filter((e) => e.from < offset);
  }

  /** Forgets epochs no commit can need any more, once `offset` is committed. */
  forgetBefore(offset: bigint): void {
    let keep = 0;
    while (keep + 1 < this.#leaderEpochs.length && this.#leaderEpochs[keep + 1]!.from < offset) keep++;
    this.#leaderEpochs = this.#leaderEpochs.slice(keep);
  }

  reset(): void {
    this.buffer = [];
    this.nextOffset = undefined;
    this.committed = undefined;
    this.refetch = false;
    this.#leaderEpochs = [];
  }
}

/** A `MessagesStream` and the assignment it was opened for. */
interface StreamGeneration {
  readonly stream: RecordStream;
  /** Records are accepted from this stream while the client's version is this one. */
  readonly version: number;
  /** The partitions owned when the stream was opened: the only ones taken from it. */
  readonly accepts: ReadonlySet<string>;
  /** Its first `offsets` event (the start positions) was seen. */
  started: boolean;
  readonly detach: () => void;
}

/**
 * The @platformatic/kafka adapter of {@link ConsumerClient}: one `Consumer` with autocommit off and
 * one `MessagesStream` in `committed` mode (falling back to the earliest or latest offset for a
 * partition the group never committed), records as Buffers (no deserializers).
 *
 * Records are buffered per partition. A free worker takes whatever one partition has buffered, up to
 * `batchSize` records, without waiting for more; at most `concurrency` partitions are in
 * `applyChunk` at once, and a partition's next chunk starts only after the previous one settled.
 * The stream pauses when `4 × batchSize × concurrency` records are buffered and resumes at half of
 * that. If it stays paused for a second while a worker is free, the records of partitions whose
 * chunk is still running are dropped and fetched again once that chunk is done, so a handler in
 * back-off never holds the other partitions back.
 *
 * Offsets are committed only by {@link commit}, and past offsets that hold no records for this
 * isolation level (transaction markers, aborted records) once everything before them is committed
 * (reported through `onCommitted`), so a `read_committed` consumer shows no lag of one after each
 * transaction. A commit of a partition that is no longer this member's is skipped.
 *
 * On every assignment change (either group protocol) the stream is replaced: partitions kept are
 * fetched on from the first offset not yet delivered, new ones from the group's committed offset;
 * buffered records of revoked partitions are dropped, and their chunks' `isActive()` turns false.
 * A stream that dies is recreated with back-off (ms): 100, 200, 400, ... capped at 5000; a consumer
 * whose group membership is lost for good is replaced the same way.
 *
 * `start` may be called again on the same instance after it rejected (the engine's retry), not after
 * `stop`. Needs Node.js >= 22.22 or >= 24.6 (the client's own requirement) and `@platformatic/kafka`
 * installed.
 */
export class PlatformaticConsumerClient implements ConsumerClient {
  readonly name = "platformatic";
  readonly #settings: ConsumerClientSettings;
  readonly #options: Readonly<KafkaConsumerOptions>;
  readonly #topics: ReadonlySet<string>;
  readonly #highWater: number;
  readonly #partitions = new Map<string, PartitionState>();
  readonly #ready: PartitionState[] = [];
  readonly #chunks = new Set<Promise<void>>();
  readonly #closing = new Set<Promise<void>>();
  /** The `offsets` arrays of commits on their way: emptied when their partition is revoked. */
  readonly #commitsInFlight = new Map<CommitEntry[], PartitionState>();
  #sink: ChunkSink | undefined;
  #consumer: KafkaConsumer | undefined;
  #detachConsumer: (() => void) | undefined;
  #generation: StreamGeneration | undefined;
  /** Grows whenever the current stream stops being usable (assignment change, dead stream, re-fetch). */
  #version = 0;
  #seenAssignments: unknown = undefined;
  #buffered = 0;
  #active = 0;
  #paused = false;
  #flushScheduled = false;
  #reconciling: Promise<void> | undefined;
  #rebuilding: Promise<void> | undefined;
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #stallTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #joined: (() => void) | undefined;
  #starting = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(kafka: ResolvedConsumerKafkaOptions, settings: ConsumerClientSettings) {
    this.#settings = settings;
    this.#topics = new Set(settings.topics);
    this.#highWater = 4 * settings.batchSize * settings.concurrency;
    const ssl = Redacted.value(kafka.ssl);
    const sasl = kafka.sasl === undefined ? undefined : Redacted.value(kafka.sasl);
    const tls: ConnectionOptions | undefined = ssl === false ? undefined : ssl === true ? {} : ssl;
    const base = {
      clientId: kafka.clientId,
      bootstrapBrokers: [...kafka.brokers],
      connectTimeout: kafka.connectionTimeoutMs,
      requestTimeout: kafka.requestTimeoutMs,
      retries: CLIENT_RETRIES,
      retryDelay,
      autocreateTopics: false,
      ...(tls !== undefined ? { tls, tlsServerName: typeof tls.servername === "string" ? tls.servername : true } : {}),
      ...(sasl !== undefined
        ? {
            sasl: {
              mechanism: SASL_MECHANISMS[sasl.mechanism],
              username: sasl.username,
              password: sasl.password,
            } satisfies SASLOptions,
          }
        : {}),
      groupId: settings.groupId,
      autocommit: false,
      isolationLevel:
        settings.isolation === "read_committed"
          ? FetchIsolationLevels.READ_COMMITTED
          : FetchIsolationLevels.READ_UNCOMMITTED,
      maxWaitTime: settings.maxWaitTimeMs,
      maxBytesPerPartition: MAX_BYTES_PER_PARTITION,
    };
    // Group options sit on the consumer, not on `consume()`: a commit that meets a rebalance rejoins
    // through them too.
    this.#options =
      settings.groupProtocol === "consumer"
        ? { ...base, groupProtocol: "consumer" }
        : {
            ...base,
            groupProtocol: "classic",
            ...(settings.sessionTimeoutMs !== null
              ? {
                  sessionTimeout: settings.sessionTimeoutMs,
                  // A JoinGroup waits up to the rebalance timeout and the client gives up on any request
                  // after requestTimeoutMs (30 s by default): the smallest value the client accepts.
                  rebalanceTimeout: settings.sessionTimeoutMs,
                }
              : {}),
            ...(settings.heartbeatIntervalMs !== null ? { heartbeatInterval: settings.heartbeatIntervalMs } : {}),
          };
  }

  /**
   * Connects, joins the group and starts delivering chunks to `sink`; resolves once the first
   * assignment arrived. Rejects when the broker cannot be reached, after closing what it opened, so
   * the same instance may be started again.
   */
  async start(sink: ChunkSink): Promise<void> {
    if (this.#stopping || this.#starting || this.#consumer !== undefined) {
      const state = this.#stopping ? "stopped" : "started";
      throw new ConsumerStateError({ state, message: `start() on a platformatic client that is ${state}` });
    }
    this.#starting = true;
    this.#sink = sink;
    try {
      await this.#connect();
      await this.#firstAssignment();
      if (this.#stopping) throw new ConsumerStateError({ state: "stopped", message: "stopped while starting" });
    } catch (error) {
      if (!this.#stopping) {
        await this.#disconnect();
        this.#sink = undefined;
        this.#partitions.clear();
        this.#ready.length = 0;
        this.#buffered = 0;
      }
      throw error;
    } finally {
      this.#starting = false;
    }
    this.#reconcile();
  }

  /** Under the consumer protocol the assignment may come with a heartbeat after the join. */
  #firstAssignment(): Promise<void> {
    this.#sync();
    if (this.#consumer?.assignments != null || this.#stopping) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#joined = undefined;
        reject(new Error(`no partition assignment within ${FIRST_ASSIGNMENT_TIMEOUT_MS} ms of joining the group`));
      }, FIRST_ASSIGNMENT_TIMEOUT_MS);
      this.#joined = () => {
        clearTimeout(timer);
        this.#joined = undefined;
        resolve();
      };
    });
  }

  /**
   * Commits `offset` (the next offset to read) for the partition, after every earlier commit of it.
   * Skipped (resolves without committing) when the partition is not this member's any more: its new
   * owner reads from the group's committed offset and the engine's watermarks skip what was applied.
   */
  commit(offset: PartitionOffset): Promise<void> {
    this.#sync();
    const state = this.#partitions.get(partitionKey(offset.topic, offset.partition));
    if (state === undefined || !state.owned || this.#consumer === undefined) return Promise.resolve();
    return this.#enqueueCommit(state, state.epoch, BigInt(offset.offset)).then(ignore);
  }

  /**
   * The end offset of each partition of `topics` for this isolation level: the last stable offset
   * under `read_committed`, the high watermark under `read_uncommitted`.
   */
  endOffsets(topics: readonly string[]): Promise<PartitionOffset[]> {
    if (topics.length === 0) return Promise.resolve([]);
    return this.#withConsumer(async (consumer) => {
      const offsets = await consumer.listOffsets({ topics: [...topics] });
      return topics.flatMap((topic) => partitionOffsets(topic, offsets.get(topic)));
    });
  }

  /** The offsets the group has committed for the partitions of `topics`; partitions without one are left out. */
  committedOffsets(topics: readonly string[]): Promise<PartitionOffset[]> {
    if (topics.length === 0) return Promise.resolve([]);
    return this.#withConsumer(async (consumer) => {
      const metadata = await consumer.metadata({ topics: [...topics] });
      const request = topics.flatMap((topic) => {
        const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
        return count > 0 ? [{ topic, partitions: Array.from({ length: count }, (_, i) => i) }] : [];
      });
      if (request.length === 0) return [];
      const committed = await consumer.listCommittedOffsets({ topics: request });
      // -1: the group has no offset for the partition.
      return request.flatMap(({ topic }) =>
        partitionOffsets(topic, committed.get(topic)).filter((o) => o.offset !== "-1"),
      );
    });
  }

  /**
   * Runs `use` with the running consumer, or before `start` (and after `stop`) with a short-lived one:
   * ListOffsets and OffsetFetch need no group membership. That one speaks the classic protocol, so its
   * OffsetFetch carries no member epoch to validate.
   */
  async #withConsumer<T>(use: (consumer: KafkaConsumer) => Promise<T>): Promise<T> {
    const own = this.#consumer;
    if (own !== undefined) return use(own);
    const { groupProtocol: _, ...options } = this.#options;
    const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({ ...options, groupProtocol: "classic" });
    try {
      return await use(consumer);
    } finally {
      await consumer.close().catch(ignore);
    }
  }

  /**
   * Stops fetching, waits for the chunks in `applyChunk` (their `isActive()` is false from now on),
   * closes the stream and the consumer (leaving the group) and reports every partition as revoked.
   * Idempotent.
   */
  stop(beforeLeave?: () => Promise<void>): Promise<void> {
    this.#stopped ??= this.#stop(beforeLeave);
    return this.#stopped;
  }

  async #stop(beforeLeave: (() => Promise<void>) | undefined): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#stallTimer);
    this.#restartTimer = undefined;
    this.#stallTimer = undefined;
    this.#wake?.();
    this.#joined?.();
    this.#generation?.stream.pause();
    for (const state of this.#partitions.values()) this.#dropBuffer(state);
    await Promise.allSettled([...this.#chunks]);
    await beforeLeave?.().catch((error: unknown) => this.#notifyError(error));
    await Promise.allSettled([...this.#partitions.values()].map((state) => state.commits));
    const owned = this.#ownedPartitions();
    await this.#disconnect();
    await Promise.allSettled([this.#reconciling, this.#rebuilding]);
    await this.#disconnect();
    for (const state of this.#partitions.values()) state.owned = false;
    if (owned.length > 0) this.#notify((sink) => sink.onRevoked(owned));
  }

  /** Creates the consumer, joins the group and opens the first stream. Closes everything if that fails. */
  async #connect(): Promise<void> {
    const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({ ...this.#options });
    this.#consumer = consumer;
    this.#seenAssignments = undefined;
    this.#detachConsumer = this.#listen(consumer);
    // A closing stream stops tracking its topics; were it the last one the consumer would leave the
    // subscription (and the group would rebalance) while its replacement opens. This reference holds it.
    consumer.topics.trackAll(...this.#topics);
    let opened: Promise<void> | undefined;
    try {
      opened = this.#openStream(consumer);
      this.#reconciling = opened;
      await opened;
    } catch (error) {
      if (this.#consumer === consumer) await this.#disconnect();
      throw error;
    } finally {
      if (this.#reconciling === opened) this.#reconciling = undefined;
    }
    if (this.#stopping || this.#consumer !== consumer) {
      throw new ConsumerStateError({ state: "stopped", message: "stopped while connecting" });
    }
  }

  /** Closes the stream(s) and the consumer. */
  async #disconnect(): Promise<void> {
    const consumer = this.#consumer;
    this.#consumer = undefined;
    this.#detachConsumer?.();
    this.#detachConsumer = undefined;
    const generation = this.#generation;
    this.#generation = undefined;
    if (generation !== undefined) this.#retire(generation);
    await Promise.allSettled([...this.#closing]);
    if (consumer !== undefined) {
      // Late events of a closed consumer must not throw for want of a listener.
      consumer.on("error", ignore);
      await consumer.close(true).catch((error: unknown) => this.#notifyError(error));
    }
  }

  #listen(consumer: KafkaConsumer): () => void {
    const sync = (): void => {
      this.#sync();
      // Some assignment changes land right after the event (a leave, a fenced member): look again.
      setImmediate(() => this.#sync());
    };
    const onHeartbeatError = (payload: { error: Error }): void => {
      this.#notifyError(payload.error);
      sync();
      if (this.#memberForgotten(payload.error, consumer)) this.#rebuild();
    };
    const onStalled = (payload: { lastError?: Error; stalledFor: number }): void => {
      this.#notifyError(
        new Error(`group heartbeats have failed for ${payload.stalledFor} ms`, { cause: payload.lastError }),
      );
    };
    const onError = (error: Error): void => {
      this.#notifyError(error);
      // The client emits this when a rejoin failed for good: no heartbeat follows, the membership is lost.
      this.#rebuild();
    };
    const events = [
      "consumer:group:join",
      "consumer:group:leave",
      "consumer:group:rebalance",
      "consumer:heartbeat:start",
      "consumer:heartbeat:end",
    ] as const;
    for (const event of events) consumer.on(event, sync);
    consumer.on("consumer:heartbeat:error", onHeartbeatError);
    consumer.on("consumer:heartbeat:stalled", onStalled);
    consumer.on("error", onError);
    return () => {
      for (const event of events) consumer.off(event, sync);
      consumer.off("consumer:heartbeat:error", onHeartbeatError);
      consumer.off("consumer:heartbeat:stalled", onStalled);
      consumer.off("error", onError);
    };
  }

  /**
   * Compares the consumer's assignment with the partitions owned: releases the revoked ones (their
   * buffers dropped, their commits on the way emptied), takes the new ones, and makes the stream
   * stale when anything changed. Cheap when nothing changed: the client replaces its assignment
   * array on every change.
   */
  #sync(): void {
    const consumer = this.#consumer;
    if (consumer === undefined || this.#stopping) return;
    const assignments = consumer.assignments;
    if (assignments === this.#seenAssignments) return;
    this.#seenAssignments = assignments;
    const now = new Set<string>();
    const assigned: TopicPartition[] = [];
    for (const { topic, partitions } of assignments ?? []) {
      if (!this.#topics.has(topic)) continue;
      for (const partition of partitions) {
        const key = partitionKey(topic, partition);
        now.add(key);
        let state = this.#partitions.get(key);
        if (state === undefined) {
          state = new PartitionState(topic, partition);
          this.#partitions.set(key, state);
        }
        if (!state.owned) {
          state.owned = true;
          state.epoch++;
          this.#dropBuffer(state);
          state.reset();
          assigned.push({ topic, partition });
        }
      }
    }
    const revoked: TopicPartition[] = [];
    for (const state of this.#partitions.values()) {
      if (!state.owned || now.has(state.key)) continue;
      this.#release(state);
      revoked.push({ topic: state.topic, partition: state.partition });
    }
    if (revoked.length > 0 || assigned.length > 0) this.#version++;
    if (revoked.length > 0) this.#notify((sink) => sink.onRevoked(revoked));
    if (assigned.length > 0) this.#notify((sink) => sink.onAssigned(assigned));
    if (assignments !== null) this.#joined?.();
    if (revoked.length > 0 || assigned.length > 0) {
      this.#reconcile();
      this.#scheduleFlush();
    }
  }

  #release(state: PartitionState): void {
    state.owned = false;
    state.epoch++;
    this.#dropBuffer(state);
    state.reset();
    // A commit waiting to be retried after a rejoin reads these arrays again: empty, it commits nothing.
    for (const [offsets, owner] of this.#commitsInFlight) if (owner === state) offsets.length = 0;
  }

  #ownedPartitions(): TopicPartition[] {
    return [...this.#partitions.values()]
      .filter((s) => s.owned)
      .map((s) => ({ topic: s.topic, partition: s.partition }));
  }

  /** Opens a stream for the current assignment unless one is open, or one is being opened. */
  #reconcile(): void {
    const consumer = this.#consumer;
    if (this.#stopping || this.#starting || consumer === undefined) return;
    if (this.#reconciling !== undefined || this.#rebuilding !== undefined || this.#restartTimer !== undefined) return;
    if (this.#generation?.version === this.#version) return;
    const run = (async () => {
      try {
        while (!this.#stopping && consumer === this.#consumer && this.#generation?.version !== this.#version) {
          await this.#openStream(consumer);
        }
      } catch (error) {
        if (!this.#stopping && consumer === this.#consumer) {
          this.#notifyError(error);
          this.#scheduleRestart();
        }
      } finally {
        this.#reconciling = undefined;
      }
    })();
    this.#reconciling = run;
  }

  #scheduleRestart(): void {
    if (this.#restartTimer !== undefined || this.#stopping) return;
    this.#failures++;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#reconcile();
    }, restartDelay(this.#failures));
    this.#restartTimer.unref();
  }

  /**
   * Opens a stream and makes it the current one, inside the client's callback: the stream was just
   * created, no I/O has happened since, so it starts from exactly the assignment read here, and its
   * listeners are in place before it can emit anything.
   */
  #openStream(consumer: KafkaConsumer): Promise<void> {
    const options = {
      topics: [...this.#settings.topics],
      mode: MessagesStreamModes.COMMITTED,
      fallbackMode: this.#settings.fromBeginning
        ? MessagesStreamFallbackModes.EARLIEST
        : MessagesStreamFallbackModes.LATEST,
      autocommit: false,
    };
    return new Promise<void>((resolve, reject) => {
      consumer.consume(options, (error, stream) => {
        if (error !== null || stream === undefined) {
          reject(error ?? new Error("the client opened no stream"));
          return;
        }
        if (this.#stopping || consumer !== this.#consumer) this.#closeStream(stream);
        else this.#install(stream);
        resolve();
      });
    });
  }

  #install(stream: RecordStream): void {
    this.#sync();
    const accepts = new Set<string>();
    for (const state of this.#partitions.values()) {
      if (!state.owned) continue;
      accepts.add(state.key);
      // The new stream fetches it from `nextOffset` again.
      state.refetch = false;
    }
    const onData = (message: KafkaMessage): void => this.#onMessage(generation, message);
    const onOffsets = (): void => this.#onOffsets(generation);
    const onFetch = (): void => queueMicrotask(() => this.#commitMarkersOfStream(generation));
    const onError = (error: Error): void => this.#onStreamEnd(generation, error);
    const onClose = (): void => this.#onStreamEnd(generation, undefined);
    const generation: StreamGeneration = {
      stream,
      version: this.#version,
      accepts,
      started: false,
      detach: () => {
        stream.off("data", onData);
        stream.off("offsets", onOffsets);
        stream.off("fetch", onFetch);
        stream.off("error", onError);
        stream.off("close", onClose);
      },
    };
    const previous = this.#generation;
    this.#generation = generation;
    stream.on("error", onError);
    stream.on("close", onClose);
    stream.on("offsets", onOffsets);
    stream.on("fetch", onFetch);
    stream.on("data", onData);
    if (this.#paused) stream.pause();
    if (previous !== undefined) this.#retire(previous);
  }

  #retire(generation: StreamGeneration): void {
    generation.detach();
    this.#closeStream(generation.stream);
  }

  #closeStream(stream: RecordStream): void {
    stream.on("error", ignore);
    const closing = stream.close().catch(ignore);
    this.#closing.add(closing);
    void closing.finally(() => this.#closing.delete(closing));
  }

  #onStreamEnd(generation: StreamGeneration, error: Error | undefined): void {
    if (generation !== this.#generation || this.#stopping) return;
    if (error !== undefined) this.#notifyError(error);
    // Dead: a new stream fetches on from what was delivered. Records only in the dead stream's
    // buffer were never accepted, so nothing is skipped.
    this.#version++;
    this.#scheduleRestart();
  }

  /**
   * The stream's start positions are known (committed offsets, or the fallback): partitions this
   * client already delivered from are moved to their next undelivered offset (the client keeps a
   * partition's position only while it owns the same stream), the others start where the stream does.
   */
  #onOffsets(generation: StreamGeneration): void {
    if (generation.started) return;
    generation.started = true;
    this.#sync();
    if (generation !== this.#generation || generation.version !== this.#version) return;
    this.#failures = 0;
    const positions = generation.stream.offsetsToFetch;
    for (const key of generation.accepts) {
      const state = this.#partitions.get(key);
      if (state === undefined || !state.owned) continue;
      if (state.nextOffset !== undefined) {
        positions.set(key, state.nextOffset);
      } else {
        const start = positions.get(key);
        if (start !== undefined) {
          state.nextOffset = start;
          state.committed = start;
        }
      }
    }
  }

  #onMessage(generation: StreamGeneration, message: KafkaMessage): void {
    if (generation.version !== this.#version) return;
    this.#sync();
    if (generation.version !== this.#version) return;
    const key = partitionKey(message.topic, message.partition);
    const state = this.#partitions.get(key);
    if (state === undefined || !state.owned || state.refetch || !generation.accepts.has(key)) return;
    // A stream re-fetches from the committed offset after a rejoin: those records are here already.
    if (state.nextOffset !== undefined && message.offset < state.nextOffset) return;
    state.buffer.push(toRecord(message));
    this.#buffered++;
    state.nextOffset = message.offset + 1n;
    state.noteLeaderEpoch(message.offset, message.leaderEpoch);
    this.#enqueue(state);
    // Also when already paused: the client resumes its streams itself after a consumer-protocol revocation.
    if (this.#buffered >= this.#highWater) this.#pause();
    this.#scheduleFlush();
  }

  #enqueue(state: PartitionState): void {
    if (state.queued || state.busy || !state.owned || state.buffer.length === 0) return;
    state.queued = true;
    this.#ready.push(state);
  }

  /** Runs after the records of one fetch are all buffered, so a chunk holds what arrived together. */
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#pump();
      this.#applyBackpressure();
    });
  }

  #pump(): void {
    while (!this.#stopping && this.#active < this.#settings.concurrency && this.#ready.length > 0) {
      const state = this.#ready.shift()!;
      state.queued = false;
      if (state.busy || !state.owned || state.buffer.length === 0) continue;
      this.#runChunk(state);
    }
  }

  #runChunk(state: PartitionState): void {
    const sink = this.#sink!;
    const records = state.buffer.splice(0, this.#settings.batchSize);
    this.#buffered -= records.length;
    const epoch = state.epoch;
    const chunk: PartitionChunk = { topic: state.topic, partition: state.partition, records };
    const control: ChunkControl = {
      isActive: () => {
        this.#sync();
        return !this.#stopping && state.owned && state.epoch === epoch;
      },
      // The client heartbeats on its own timer, whatever the chunk does.
      heartbeat: () => Promise.resolve(),
    };
    state.busy = true;
    state.busySince = Date.now();
    this.#active++;
    const run = this.#applyChunk(sink, state, chunk, control).finally(() => this.#chunks.delete(run));
    this.#chunks.add(run);
  }

  async #applyChunk(sink: ChunkSink, state: PartitionState, chunk: PartitionChunk, control: ChunkControl) {
    try {
      await sink.applyChunk(chunk, control);
    } catch (error) {
      // The engine gave up on a chunk of a partition still ours: deliver it again rather than skip it.
      if (control.isActive()) {
        this.#notifyError(error);
        this.#rewind(state, BigInt(chunk.records[0]!.offset));
      }
    } finally {
      state.busy = false;
      this.#active--;
      this.#afterChunk(state);
    }
  }

  #afterChunk(state: PartitionState): void {
    if (this.#stopping) return;
    if (state.owned && state.refetch) {
      this.#version++;
      this.#reconcile();
    } else {
      this.#commitMarkers(state);
    }
    this.#enqueue(state);
    this.#scheduleFlush();
  }

  /** Drops the buffer and has a new stream fetch the partition from `offset`. */
  #rewind(state: PartitionState, offset: bigint): void {
    this.#dropBuffer(state);
    state.nextOffset = offset;
    state.refetch = true;
    state.forgetFrom(offset);
  }

  #dropBuffer(state: PartitionState): void {
    this.#buffered -= state.buffer.length;
    state.buffer = [];
  }

  #pause(): void {
    this.#paused = true;
    this.#generation?.stream.pause();
  }

  #applyBackpressure(): void {
    if (this.#stopping) return;
    if (!this.#paused && this.#buffered >= this.#highWater) this.#pause();
    if (this.#paused && this.#buffered <= this.#highWater / 2) {
      this.#paused = false;
      this.#generation?.stream.resume();
    }
    if (this.#paused && this.#isStalled()) {
      if (this.#stallTimer === undefined) {
        this.#stallTimer = setTimeout(() => {
          this.#stallTimer = undefined;
          this.#shedStalled();
        }, STALL_MS);
        this.#stallTimer.unref();
      }
    } else if (this.#stallTimer !== undefined) {
      clearTimeout(this.#stallTimer);
      this.#stallTimer = undefined;
    }
  }

  /** Paused, a worker free and a partition idle: every buffered record waits for a running chunk. */
  #isStalled(): boolean {
    if (this.#active >= this.#settings.concurrency) return false;
    for (const state of this.#partitions.values()) if (state.owned && !state.busy) return true;
    return false;
  }

  /** Drops the records of partitions whose chunk has run for STALL_MS or more; looks again later if none has. */
  #shedStalled(): void {
    if (this.#stopping || !this.#paused || !this.#isStalled()) return;
    const since = Date.now() - STALL_MS;
    for (const state of this.#partitions.values()) {
      const first = state.buffer[0];
      if (state.owned && state.busy && state.busySince <= since && first !== undefined) {
        this.#rewind(state, BigInt(first.offset));
      }
    }
    this.#applyBackpressure();
  }

  #commitMarkersOfStream(generation: StreamGeneration): void {
    if (generation !== this.#generation) return;
    for (const key of generation.accepts) {
      const state = this.#partitions.get(key);
      if (state !== undefined) this.#commitMarkers(state);
    }
  }

  /**
   * Commits the stream's fetch position when it is past the last record delivered and everything
   * delivered is committed: the offsets between hold no record for this isolation level.
   */
  #commitMarkers(state: PartitionState): void {
    const generation = this.#generation;
    if (generation === undefined || generation.version !== this.#version || !generation.started) return;
    if (!generation.accepts.has(state.key) || this.#stopping || this.#consumer === undefined) return;
    // Records still in the stream's own buffer (paused) have not reached this client yet.
    if (generation.stream.readableLength > 0) return;
    if (!state.owned || state.busy || state.refetch || state.buffer.length > 0) return;
    const next = state.nextOffset;
    if (next === undefined || state.committed !== next) return;
    const fetched = generation.stream.offsetsToFetch.get(state.key);
    if (fetched === undefined || fetched <= next) return;
    state.nextOffset = fetched;
    const offset = { topic: state.topic, partition: state.partition, offset: fetched.toString() };
    this.#enqueueCommit(state, state.epoch, fetched).then(
      (committed) => {
        if (committed) this.#notify((sink) => sink.onCommitted(offset));
      },
      (error: unknown) => this.#notifyError(error),
    );
  }

  #enqueueCommit(state: PartitionState, epoch: number, offset: bigint): Promise<boolean> {
    const run = state.commits.then(() => this.#commitNow(state, epoch, offset));
    state.commits = run.then(ignore, ignore);
    return run;
  }

  /** Commits unless the partition was revoked or a higher offset is committed already; says whether it did. */
  async #commitNow(state: PartitionState, epoch: number, offset: bigint): Promise<boolean> {
    const consumer = this.#consumer;
    if (consumer === undefined || !state.owned || state.epoch !== epoch) return false;
    if (state.committed !== undefined && offset <= state.committed) return false;
    const offsets: CommitEntry[] = [
      { topic: state.topic, partition: state.partition, offset, leaderEpoch: state.leaderEpochBefore(offset) },
    ];
    this.#commitsInFlight.set(offsets, state);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await consumer.commit({ offsets });
          break;
        } catch (error) {
          this.#sync();
          if (this.#memberForgotten(error as Error, consumer)) this.#rebuild();
          // Revoked meanwhile (the broker refused the old generation): not ours to commit any more.
          if (!state.owned || state.epoch !== epoch || consumer !== this.#consumer) return false;
          if (attempt > CLIENT_RETRIES || !findErrorBy(error as Error, "apiId", "STALE_MEMBER_EPOCH")) throw error;
          // Consumer protocol: the broker moved the member epoch on and the heartbeat telling the client
          // is still on its way. The client does not retry a commit then, but an OffsetFetch meeting the
          // same error makes it heartbeat (and learn the epoch) before retrying; then commit again.
          await consumer
            .listCommittedOffsets({ topics: [{ topic: state.topic, partitions: [state.partition] }] })
            .catch(ignore);
        }
      }
    } finally {
      this.#commitsInFlight.delete(offsets);
    }
    if (state.epoch !== epoch || offsets.length === 0) return false;
    state.committed = offset;
    state.forgetBefore(offset);
    return true;
  }

  /**
   * Under the consumer protocol the broker removed this member (its session expired, or an admin
   * removed it), yet the client keeps heartbeating with the old member epoch (it starts over only
   * when fenced) and keeps fetching without a membership. A commit that met UNKNOWN_MEMBER_ID
   * leaves the client with no member id: its retries are refused as malformed (a closed connection).
   */
  #memberForgotten(error: Error, consumer: KafkaConsumer): boolean {
    if (this.#settings.groupProtocol !== "consumer" || consumer !== this.#consumer) return false;
    return findErrorBy(error, "apiId", "UNKNOWN_MEMBER_ID") !== null || consumer.memberId === null;
  }

  /**
   * The consumer lost its group membership for good: everything it owned is revoked and a new
   * consumer joins, with back-off.
   */
  #rebuild(): void {
    if (this.#rebuilding !== undefined || this.#stopping || this.#starting || this.#consumer === undefined) return;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const run = (async () => {
      const revoked = this.#ownedPartitions();
      for (const state of this.#partitions.values()) if (state.owned) this.#release(state);
      this.#version++;
      if (revoked.length > 0) this.#notify((sink) => sink.onRevoked(revoked));
      await this.#disconnect();
      while (!this.#stopping) {
        try {
          await this.#connect();
          this.#failures = 0;
          return;
        } catch (error) {
          if (this.#stopping) return;
          this.#notifyError(error);
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
            this.#restartTimer = setTimeout(resolve, restartDelay(++this.#failures));
            this.#restartTimer.unref();
          });
          this.#restartTimer = undefined;
          this.#wake = undefined;
        }
      }
    })();
    this.#rebuilding = run;
    void run.finally(() => {
      this.#rebuilding = undefined;
      this.#sync();
      this.#reconcile();
    });
  }

  #notify(call: (sink: ChunkSink) => void): void {
    const sink = this.#sink;
    if (sink === undefined) return;
    try {
      call(sink);
    } catch (error) {
      this.#notifyError(error);
    }
  }

  #notifyError(error: unknown): void {
    try {
      this.#sink?.onError(error);
    } catch {
      // The sink's own error hook failed: nothing is left to tell.
    }
  }
}
