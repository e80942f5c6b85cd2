/**
 * What the plugin needs from a consumer running in this process. `createConsumer(...)` from
 * `@eventlane/consumer` satisfies it structurally; the plugin never imports the consumer, so its
 * published types carry no dependency on it.
 */

/** The counters of one consumer instance since it was created (`consumer.stats()`). */
export interface EventlaneConsumerStats {
  /** Chunk transactions committed. */
  readonly chunks: number;
  readonly applied: number;
  /** Known event types without a handler: acknowledged. */
  readonly ignored: number;
  /** Records at or below their key's watermark, or whose event id was seen: skipped. */
  readonly duplicates: number;
  readonly deadLettered: number;
  /** Handler attempts that threw (each retry counts). */
  readonly handlerFailures: number;
  /** Infrastructure errors (database, offset commit, Kafka, replay poll, lag read). */
  readonly errors: number;
  /** Dead letters replayed by this instance. */
  readonly replayed: number;
}

/** How far the consumer is behind on one partition it owns (`consumer.lag()`). */
export interface EventlaneConsumerPartitionLag {
  readonly topic: string;
  readonly partition: number;
  /** The next offset the consumer will commit; null before its first chunk of the partition. */
  readonly committedOffset: string | null;
  /** The partition's end: the last stable offset under `read_committed`, else the high watermark. */
  readonly endOffset: string;
  /** Records between the two; null while the committed offset is not known. */
  readonly lag: number | null;
}

/**
 * A consumer handle the plugin accepts in `consumers`. It is read at scrape time only: the plugin
 * subscribes to nothing and starts no timer.
 */
export interface EventlaneConsumerHandle {
  readonly options: { readonly groupId: string };
  stats(): EventlaneConsumerStats;
  lag(): readonly EventlaneConsumerPartitionLag[];
}

/** The `outcome` label of `eventlane_consumer_events_total`, one per record outcome. */
export const ConsumerEventOutcomes = ["applied", "ignored", "duplicate", "dead_lettered"] as const;
export type ConsumerEventOutcome = (typeof ConsumerEventOutcomes)[number];
