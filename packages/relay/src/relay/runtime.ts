import type { TableNames } from "@eventlane/core";
import type pg from "pg";
import type { RelayEventEmitter } from "../events.ts";
import type { RelayStatements } from "../outbox-reader/statements.ts";
import type { ResolvedRelayOptions } from "../options.ts";
import type { ProducerPort, TopicDescription } from "../producer/producer-port.ts";
import type { Wakeup } from "../wakeup/wakeup.ts";

/** What `status()` reports for one shard this instance competes for. */
export interface ShardStatus {
  readonly shard: number;
  readonly leader: boolean;
  readonly epoch: number | null;
  readonly lastHeartbeatAt: Date | null;
}

/** Everything the relay's fibers share, built once at start. */
export interface RelayRuntime {
  readonly options: ResolvedRelayOptions;
  readonly tables: TableNames;
  readonly connectionString: string;
  readonly pool: pg.Pool;
  readonly statements: RelayStatements;
  readonly producer: ProducerPort;
  readonly events: RelayEventEmitter;
  readonly wakeup: Wakeup;
  readonly namespace: number;
  readonly shardStatus: Map<number, ShardStatus>;
  /** Filled at start from the topic check. */
  topics: ReadonlyMap<string, TopicDescription>;
  /** Serialises sends: never two in flight on the one producer (kafkajs #598). */
  readonly sendSerially: <T>(fn: () => Promise<T>) => Promise<T>;
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
