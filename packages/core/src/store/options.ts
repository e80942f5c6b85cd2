import { InvalidOptionError } from "../errors.ts";
import { refuseUnknownOptions } from "../internal/option-kit.ts";
import { resolveTableNames, type SchemaOptions, type TableNames } from "../schema/names.ts";

/** Options of {@link createEventStore}. */
export interface EventStoreOptions extends SchemaOptions {
  /**
   * Send one `NOTIFY` per writing transaction so a relay wakes up at once instead of at its next
   * poll. PostgreSQL folds identical notifications of one transaction into one, so a transaction
   * that appends or enqueues many events still sends one. The cost: every notifying commit takes a
   * cluster-wide lock on the notification queue (`PreCommit_Notify`), which serialises the commits
   * of concurrent writers, and a listener that stops reading fills the queue (8 GB) until every
   * notifying commit fails. Turn it off for very high write concurrency and let the relay poll.
   * @default true
   */
  readonly notify?: boolean;
  /**
   * Largest serialised (JSON, UTF-8) payload accepted at append or enqueue, in bytes. Kafka's
   * default `max.message.bytes` is 1 MiB including headers; keep this below your topics' limit.
   * @default 900000
   */
  readonly maxPayloadBytes?: number;
}

/** {@link EventStoreOptions} resolved once, validated and frozen. */
export interface ResolvedEventStoreOptions {
  readonly names: TableNames;
  readonly notify: boolean;
  readonly maxPayloadBytes: number;
}

const KNOWN = [
  "schema",
  "tablePrefix",
  "notify",
  "maxPayloadBytes",
] as const satisfies readonly (keyof EventStoreOptions)[];

/** Validates {@link EventStoreOptions} (unknown keys refused) and resolves them into frozen options. */
export function resolveEventStoreOptions(options: EventStoreOptions = {}): ResolvedEventStoreOptions {
  refuseUnknownOptions(options, KNOWN, "event store");
  const notify = options.notify ?? true;
  if (typeof notify !== "boolean") {
    throw new InvalidOptionError({ option: "notify", message: `notify must be a boolean; got ${typeof notify}` });
  }
  const maxPayloadBytes = options.maxPayloadBytes ?? 900_000;
  if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 1) {
    throw new InvalidOptionError({
      option: "maxPayloadBytes",
      message: `maxPayloadBytes must be a positive integer; got ${maxPayloadBytes}`,
    });
  }
  return Object.freeze({ names: resolveTableNames(options), notify, maxPayloadBytes });
}
