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
  /** An infrastructure error (database, offset commit, Kafka crash); the consumer retries. */
  error: { readonly stage: "apply" | "dead_letter" | "commit_offsets" | "kafka"; readonly error: unknown };
  "consumer:started": { readonly groupId: string; readonly topics: readonly string[] };
  "consumer:stopped": { readonly groupId: string };
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
  readonly applied: number;
  readonly ignored: number;
  readonly duplicates: number;
  readonly deadLettered: number;
  readonly gaps: number;
  readonly handlerFailures: number;
  readonly errors: number;
}
