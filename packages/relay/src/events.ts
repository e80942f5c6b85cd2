import type { LeadershipLossReason } from "./errors.ts";
import type { PublishFailureReason } from "./producer/producer-port.ts";

/** Typed lifecycle events of a relay: name -> payload. Background failures always surface here. */
export interface RelayEvents {
  "leader:acquired": { readonly shard: number; readonly epoch: number };
  "leader:lost": { readonly shard: number; readonly epoch: number; readonly reason: LeadershipLossReason };
  "batch:published": {
    readonly shard: number;
    readonly epoch: number;
    readonly count: number;
    readonly byTopic: Readonly<Record<string, number>>;
    readonly durationMs: number;
    /** Per message: publish time minus the outbox row's `created_at`, in ms. */
    readonly commitToPublishMs: readonly number[];
  };
  "publish:failed": {
    readonly shard: number;
    readonly reason: PublishFailureReason;
    readonly backoffMs: number;
    readonly error: unknown;
  };
  "record:failed": {
    readonly shard: number;
    readonly outboxId: string;
    readonly topic: string;
    readonly attempts: number;
    readonly reason: string;
  };
  "dead-lettered": {
    readonly shard: number;
    readonly outboxId: string;
    readonly topic: string;
    readonly reason: string;
  };
  "key:parked": { readonly topic: string; readonly outboxId: string };
  "key:requeued": { readonly topic: string; readonly outboxId: string };
  "key:skipped": { readonly topic: string; readonly outboxId: string };
  "producer:connected": Record<string, never>;
  "producer:disconnected": Record<string, never>;
  /** Rows removed by one retention run (only emitted when rows were deleted). */
  "retention:deleted": { readonly count: number };
  /** Any other background failure. */
  error: { readonly error: unknown };
}

export type RelayEventName = keyof RelayEvents;
export type RelayListener<K extends RelayEventName> = (payload: RelayEvents[K]) => void;

/** A small synchronous typed emitter. A throwing listener is reported as an `error` event. */
export class RelayEventEmitter {
  readonly #listeners = new Map<RelayEventName, Set<(payload: never) => void>>();

  on<K extends RelayEventName>(event: K, listener: RelayListener<K>): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as (payload: never) => void);
    return () => {
      set.delete(listener as (payload: never) => void);
    };
  }

  emit<K extends RelayEventName>(event: K, payload: RelayEvents[K]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as RelayListener<K>)(payload);
      } catch (error) {
        if (event !== "error") this.emit("error", { error });
      }
    }
  }
}
