import type { ConnectionOptions } from "node:tls";
import type { Redacted } from "effect";
import type { IsolationLevel } from "../options.ts";

/**
 * The consumer's port to a Kafka client. The apply engine (`create-consumer.ts`) never imports a
 * Kafka client: it gets chunks of one partition's records through this port and commits offsets
 * through it, after the chunk's database transaction committed. One adapter per client:
 * `kafkajs-client.ts` and `platformatic-client.ts`, each imported only when chosen.
 */

/** One Kafka record as the engine sees it, whatever the client. */
export interface ConsumedRecord {
  /** The record's offset, as a decimal string. */
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Every header as a UTF-8 string (the first value when a header repeats). */
  readonly headers: Readonly<Record<string, string>>;
  /** The record's timestamp (ms since the epoch). */
  readonly timestamp: number;
}

/** Consecutive records of one partition, in offset order. */
export interface PartitionChunk {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly ConsumedRecord[];
}

/** What the engine may ask of the client while it applies one chunk. */
export interface ChunkControl {
  /**
   * False once the partition was revoked from this member (a rebalance) or the consumer is stopping:
   * the engine then stops applying the chunk's remaining records and commits no offset for it.
   */
  isActive(): boolean;
  /** Keeps the group membership alive during a long chunk (a no-op where the client heartbeats by itself). */
  heartbeat(): Promise<void>;
}

/** The engine's side of the port. */
export interface ChunkSink {
  /**
   * Applies one chunk. The client calls it for one partition at a time (never two chunks of one
   * partition at once, the next only after this resolved), and for up to `concurrency` partitions in
   * parallel. It resolves once the chunk is applied and its offset committed; it never rejects (the
   * engine retries database errors itself), except when the chunk was abandoned because the
   * partition was revoked or the consumer stops.
   */
  applyChunk(chunk: PartitionChunk, control: ChunkControl): Promise<void>;
  /** Partitions newly assigned to this member. */
  onAssigned(partitions: readonly TopicPartition[]): void;
  /** Partitions revoked from this member: buffered records of them are dropped by the client. */
  onRevoked(partitions: readonly TopicPartition[]): void;
  /**
   * An offset the client committed on its own (past transaction markers or aborted records that
   * never reach a chunk), so the engine's lag counts from it.
   */
  onCommitted(offset: PartitionOffset): void;
  /** An error of the client's own (connection, group, fetch); the client retries. */
  onError(error: unknown): void;
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** An offset of a partition: `offset` is a decimal string. */
export interface PartitionOffset extends TopicPartition {
  readonly offset: string;
}

/** Settings every adapter gets, resolved and validated by the consumer's options. */
export interface ConsumerClientSettings {
  readonly groupId: string;
  readonly topics: readonly string[];
  readonly fromBeginning: boolean;
  readonly isolation: IsolationLevel;
  /** The most records in one chunk. */
  readonly batchSize: number;
  /** Partitions applied in parallel. */
  readonly concurrency: number;
  /** Longest time a fetch waits for new records (ms). */
  readonly maxWaitTimeMs: number;
  /** Classic group protocol only: session timeout (ms); null under the consumer protocol (a broker setting). */
  readonly sessionTimeoutMs: number | null;
  /** Classic group protocol only: heartbeat interval (ms); null under the consumer protocol. */
  readonly heartbeatIntervalMs: number | null;
  /** `classic` (JoinGroup/SyncGroup) or `consumer` (KIP-848, the broker assigns). */
  readonly groupProtocol: "classic" | "consumer";
}

/** A connected Kafka consumer behind the port. */
export interface ConsumerClient {
  /** `kafkajs` or `platformatic`. */
  readonly name: string;
  /**
   * Connects, subscribes and starts delivering chunks to `sink`. Resolves once the group has been
   * joined. Rejects when the broker cannot be reached (the engine retries with backoff).
   */
  start(sink: ChunkSink): Promise<void>;
  /**
   * Commits `offset` (the next offset to read) for the partition. Never lowers the partition's
   * committed offset (a commit below one already sent is skipped), so commits may be issued without
   * waiting for each other. Rejects when the commit failed.
   */
  commit(offset: PartitionOffset): Promise<void>;
  /**
   * The end offset of each partition of `topics` as a consumer of this isolation level sees it: the
   * last stable offset under `read_committed` (so transaction markers leave no lag of 1), else the
   * high watermark.
   */
  endOffsets(topics: readonly string[]): Promise<PartitionOffset[]>;
  /**
   * The offsets the group has committed in Kafka for the partitions of `topics` (partitions without
   * one are left out), so a member that has not committed yet (just started, nothing new to read)
   * knows its lag.
   */
  committedOffsets(topics: readonly string[]): Promise<PartitionOffset[]>;
  /**
   * Stops fetching, waits for the chunks being applied, runs `beforeLeave` (the engine commits the
   * offsets still pending), leaves the group and disconnects. Idempotent.
   */
  stop(beforeLeave?: () => Promise<void>): Promise<void>;
}

/** SASL credentials, passed to the Kafka client as they are and never logged or reported. */
export interface ConsumerSasl {
  readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
  readonly username: string;
  readonly password: string;
}

/** How an adapter reaches Kafka, resolved from the consumer's `kafka` option. */
export interface ResolvedConsumerKafkaOptions {
  readonly client: "kafkajs" | "platformatic";
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** TLS: false, true (system CAs) or Node TLS options. Never logged. */
  readonly ssl: Redacted.Redacted<boolean | ConnectionOptions>;
  /** SASL, or undefined. Never logged. */
  readonly sasl: Redacted.Redacted<ConsumerSasl> | undefined;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
}
