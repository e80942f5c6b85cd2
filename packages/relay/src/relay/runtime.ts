import type { TableNames } from "@eventlane/core";
import type { RelayShardStatus } from "@eventlane/core/internal";
import type pg from "pg";
import type { RelayEventEmitter } from "../events.ts";
import type { RelayStatements } from "../outbox-reader/statements.ts";
import type { ResolvedRelayOptions } from "../options.ts";
import type { ProducerPort, TopicDescription, TransactionalProducerPort } from "../producer/producer-port.ts";
import type { Wakeup } from "../wakeup/wakeup.ts";

/** What `status()` reports for one shard this instance competes for (the relay's contract with its watchers). */
export type ShardStatus = RelayShardStatus;

/** Everything the relay's fibers share, built once at start. */
export interface RelayRuntime {
  readonly options: ResolvedRelayOptions;
  readonly tables: TableNames;
  readonly connectionString: string;
  readonly pool: pg.Pool;
  readonly statements: RelayStatements;
  /** The instance's producer (topic checks, readiness, and every send in idempotent mode). Set at start. */
  producer: ProducerPort;
  /** Transactional mode: the producer of each shard this instance leads, bound to the shard's `transactional.id`. */
  readonly shardProducers: Map<number, TransactionalProducerPort>;
  readonly events: RelayEventEmitter;
  readonly wakeup: Wakeup;
  readonly namespace: number;
  readonly shardStatus: Map<number, ShardStatus>;
  /** Set by the balancer each round: whether this instance may take a free shard. */
  readonly balance: { mayAcquire: boolean };
  /** Competes for every shard, so it takes part in balancing (else pinned to its `shards`). */
  readonly balancing: boolean;
  /** Shards this instance leads: asks the shard to hand over (finish the batch, release the lock). */
  readonly handOver: Map<number, () => void>;
  /** Filled at start from the topic check. */
  topics: ReadonlyMap<string, TopicDescription>;
  /** Serialises sends: never two in flight on the one producer (kafkajs #598). */
  readonly sendSerially: <T>(fn: () => Promise<T>) => Promise<T>;
}

/**
 * The producer a shard's batches are sent with: the shard's transactional producer while this instance
 * leads it in transactional mode, else the instance's producer.
 */
export function producerFor(rt: RelayRuntime, shard: number): ProducerPort {
  return rt.shardProducers.get(shard) ?? rt.producer;
}

/** A promise mutex. */
export function serialiser(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>) => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}
