import type { DeadLetterReason } from "./message/dead-letter-reason.ts";
import type { PositionKind } from "./message/decode-message.ts";

/** Where a record sits in Kafka. */
export interface RecordRef {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  readonly eventId: string | null;
  readonly eventType: string | null;
}

/** Runtime events of a consumer: background work never fails silently. */
export interface ConsumerEventMap {
  /** The handler's transaction committed. Emitted before the offset is committed. */
  "event:applied": RecordRef & { readonly position: number | null };
  /** A known event type without a handler: acknowledged, watermark advanced. */
  "event:ignored": RecordRef;
  /** A record at or below its key's watermark (or an event id already in the inbox): skipped. */
  "event:duplicate": RecordRef & { readonly position: number | null; readonly watermark: number | null };
  /** A record written to the dead-letter table. */
  "event:dead_lettered": RecordRef & { readonly reason: DeadLetterReason; readonly detail: string };
  /** A key's position jumped past the next expected one. */
  "gap:detected": RecordRef & {
    readonly kind: PositionKind;
    readonly expected: number;
    readonly actual: number;
    readonly action: "applied" | "refused";
  };
  /** A handler threw; it will run again (or the record is dead-lettered after the last attempt). */
  "handler:failed": RecordRef & { readonly attempt: number; readonly error: unknown };
  /** An infrastructure error (database, offset commit, Kafka, replay poll, lag read); the consumer retries. */
  error: { readonly stage: ErrorStage; readonly error: unknown };
  /** Kafka could not be reached at start (or the group not joined): the consumer retries after `retryInMs`. */
  "kafka:waiting": { readonly attempt: number; readonly retryInMs: number; readonly error: unknown };
  /** Partitions assigned to this member by a rebalance. */
  "partitions:assigned": { readonly partitions: readonly { topic: string; partition: number }[] };
  /** Partitions revoked from this member by a rebalance: their chunks in flight commit no offset. */
  "partitions:revoked": { readonly partitions: readonly { topic: string; partition: number }[] };
  /** A dead letter was replayed: its handler ran and committed. */
  "dead_letter:replayed": RecordRef & { readonly deadLetterId: string; readonly actor: string };
  /** A dead letter was skipped (never to be applied). */
  "dead_letter:skipped": { readonly deadLetterId: string; readonly actor: string };
  /** The lag of every partition this member owns, read every `lagIntervalMs`. */
  "lag:updated": { readonly partitions: readonly PartitionLag[] };
  "consumer:started": { readonly groupId: string; readonly topics: readonly string[] };
  "consumer:stopped": { readonly groupId: string };
}

/** Where an infrastructure error happened. */
export type ErrorStage = "apply" | "dead_letter" | "commit_offsets" | "kafka" | "replay" | "lag";

/** How far this member is behind on one partition. */
export interface PartitionLag {
  readonly topic: string;
  readonly partition: number;
  /** The next offset this member will commit (null before its first chunk of the partition). */
  readonly committedOffset: string | null;
  /** The partition's end: the last stable offset under `read_committed` (else the high watermark). */
  readonly endOffset: string;
  /** Records between the two (null while the committed offset is unknown). */
  readonly lag: number | null;
}

export type ConsumerEventName = keyof ConsumerEventMap;
export type ConsumerListener<K extends ConsumerEventName> = (event: ConsumerEventMap[K]) => void;

/** A tiny typed emitter owned by one consumer. A throwing listener never breaks the consumer. */
export class ConsumerEmitter {
  readonly #listeners = new Map<ConsumerEventName, Set<(event: never) => void>>();

  on<K extends ConsumerEventName>(name: K, listener: ConsumerListener<K>): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener as (event: never) => void);
    return () => {
      set.delete(listener as (event: never) => void);
    };
  }

  /** True when someone listens to `name`: the hot path builds an event's payload only then. */
  listens(name: ConsumerEventName): boolean {
    return (this.#listeners.get(name)?.size ?? 0) > 0;
  }

  emit<K extends ConsumerEventName>(name: K, event: ConsumerEventMap[K]): void {
    for (const listener of this.#listeners.get(name) ?? []) {
      try {
        (listener as ConsumerListener<K>)(event);
      } catch {
        // A listener's bug must not change what the consumer does with the record.
      }
    }
  }
}

/** Counters since the consumer was created (this process only; the database keeps durable ones). */
export interface ConsumerStats {
  readonly received: number;
  /** Chunk transactions committed. */
  readonly chunks: number;
  readonly applied: number;
  readonly ignored: number;
  readonly duplicates: number;
  readonly deadLettered: number;
  readonly gaps: number;
  readonly handlerFailures: number;
  readonly errors: number;
  /** Dead letters replayed by this instance. */
  readonly replayed: number;
  /** Dead letters skipped through this instance. */
  readonly skipped: number;
}
