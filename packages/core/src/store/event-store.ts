import { Schema } from "effect";
import { sql } from "kysely";
import {
  asEventArray,
  foldEvents,
  type Aggregate,
  type AggregateCommand,
  type AggregateEvent,
  type AggregateState,
} from "../aggregate/define-aggregate.ts";
import { ConcurrencyError, InvalidOptionError, UnknownEventTypeError } from "../errors.ts";
import type { DomainEvent, EventDefinition, PayloadSchema } from "../event/define-event.ts";
import { type EventMetadata, metadataToHeaders } from "../headers.ts";
import { murmur2 } from "../internal/murmur2.ts";
import { uuidv7 } from "../internal/uuid.ts";
import { checkSchemaVersion } from "../schema/migrations.ts";
import { type Executor, execute, fromDatabase, inTransaction } from "./database-failure.ts";
import { type EventStoreOptions, type ResolvedEventStoreOptions, resolveEventStoreOptions } from "./options.ts";
import { serializeHeaders, serializePayload } from "./serialize.ts";

export type { Executor } from "./database-failure.ts";

/**
 * The stream version a writer expects: a number (the version of the stream's last event), "no_stream"
 * (the stream must not exist yet) or "any" (no check).
 */
export type ExpectedVersion = number | "no_stream" | "any";

export interface AppendOptions {
  /** @default "any" */
  readonly expectedVersion?: ExpectedVersion;
  /** Metadata added to every appended event (an event's own metadata wins). */
  readonly metadata?: EventMetadata;
}

export interface AppendResult {
  /** The stream's version after the append (the version of its last event). */
  readonly nextVersion: number;
  readonly eventIds: readonly string[];
  /** Outbox row ids (bigint as string). */
  readonly outboxIds: readonly string[];
}

/** An event read back from a stream: decoded to the current schema version. */
export interface StoredEvent<E extends DomainEvent = DomainEvent> {
  readonly event: E;
  readonly eventId: string;
  readonly streamId: string;
  readonly version: number;
  /** The schema version it was stored with (before upcasting). */
  readonly storedSchemaVersion: number;
  readonly createdAt: Date;
}

export interface ReadStreamResult<E extends DomainEvent> {
  readonly events: readonly StoredEvent<E>[];
  /** The stream's current version (0 when it does not exist). */
  readonly version: number;
}

export interface AggregateStreamResult<State> {
  readonly state: State;
  /** The stream's current version (0 when it does not exist). */
  readonly version: number;
  /** The version of the snapshot the state started from, if any. */
  readonly snapshotVersion: number | null;
}

export interface HandleOptions {
  /**
   * How many times to reload and decide again after a {@link ConcurrencyError}. Only when the store
   * opens the transaction itself (you passed a `Kysely`, not a `Transaction`).
   * @default 0
   */
  readonly retries?: number;
  readonly metadata?: EventMetadata;
}

export interface HandleResult<State, E> {
  readonly state: State;
  readonly version: number;
  readonly events: readonly E[];
}

export interface EnqueueOptions {
  /** The Kafka message key; defaults to the definition's `route.key(data)`. One of the two is required. */
  readonly key?: string;
  readonly metadata?: EventMetadata;
}

export interface EnqueueResult {
  readonly outboxId: string;
  readonly eventId: string;
  /** This event's position in its (topic, key): 1, 2, 3, ... without gaps, in commit order. */
  readonly sequence: number;
}

/**
 * The Eventlane event store and outbox writer over your own Kysely instance. Its first call checks
 * the database's schema version (once per store; again after a failed check) and fails with
 * {@link SchemaVersionError} when the database is not migrated to {@link SCHEMA_VERSION}.
 */
export interface EventStore {
  readonly options: ResolvedEventStoreOptions;
  /**
   * Appends events to a stream and writes their outbox rows, in `db`'s transaction (or a new one).
   * Throws {@link ConcurrencyError} when the stream is not at `expectedVersion`, and the payload
   * errors ({@link InvalidPayloadError}, {@link SerializationError}, {@link PayloadTooLargeError},
   * {@link UnknownEventTypeError}) before anything is written.
   */
  appendToStream<A extends Aggregate<string, readonly EventDefinition[], unknown, unknown>>(
    db: Executor,
    aggregate: A,
    streamId: string,
    events: readonly AggregateEvent<A>[],
    options?: AppendOptions,
  ): Promise<AppendResult>;
  /** Reads a stream's events, upcast to current schema versions. */
  readStream<A extends Aggregate<string, readonly EventDefinition[], unknown, unknown>>(
    db: Executor,
    aggregate: A,
    streamId: string,
    options?: { readonly fromVersion?: number },
  ): Promise<ReadStreamResult<AggregateEvent<A>>>;
  /** Rebuilds an aggregate's state by replay, starting from its latest snapshot when it has one. */
  aggregateStream<A extends Aggregate<string, readonly EventDefinition[], unknown, unknown>>(
    db: Executor,
    aggregate: A,
    streamId: string,
  ): Promise<AggregateStreamResult<AggregateState<A>>>;
  /** Load, decide, append (with the loaded version as the expected one), snapshot when due. */
  handle<A extends Aggregate<string, readonly EventDefinition[], unknown, unknown>>(
    db: Executor,
    aggregate: A,
    streamId: string,
    command: AggregateCommand<A>,
    options?: HandleOptions,
  ): Promise<HandleResult<AggregateState<A>, AggregateEvent<A>>>;
  /**
   * Writes one event to the outbox in `db`'s transaction, for tables that are not event-sourced:
   * insert your row, then enqueue, in the same transaction. Same-key writers are serialised by a
   * per-(topic, key) sequence row, so they reach Kafka in commit order with gap-free sequences.
   */
  enqueue<D extends EventDefinition>(
    db: Executor,
    definition: D,
    data: D["schema"]["Type"],
    options?: EnqueueOptions,
  ): Promise<EnqueueResult>;
}

function validateStreamId(streamId: unknown): string {
  if (typeof streamId !== "string" || streamId.length === 0 || streamId.length > 512) {
    throw new InvalidOptionError({
      option: "streamId",
      message: "streamId must be a non-empty string of at most 512 characters",
    });
  }
  return streamId;
}

function validateExpected(expected: unknown): ExpectedVersion {
  if (expected === "any" || expected === "no_stream") return expected;
  if (typeof expected === "number" && Number.isInteger(expected) && expected >= 0) return expected;
  throw new InvalidOptionError({
    option: "expectedVersion",
    message: `expectedVersion must be an integer >= 0, "no_stream" or "any"; got ${JSON.stringify(expected)}`,
  });
}

interface StreamRow {
  version: number;
}

/**
 * Runs the caller's domain code (`decide`, `evolve`, `initialState`) and maps what it throws. The
 * Promise API rethrows it as it is; the Effect face wraps it in `DomainRejection`, by where it was
 * thrown rather than by what it looks like.
 */
type DomainGuard = <T>(run: () => T) => T;

const unguarded: DomainGuard = (run) => run();

/**
 * @internal The store, and its `handle` with what the decider throws mapped by `reject` (the Effect
 * face's `DomainRejection`). Both share one resolved configuration and one schema check.
 */
export interface EventStoreInternals {
  readonly store: EventStore;
  readonly handleRejecting: (reject: (thrown: unknown) => unknown) => EventStore["handle"];
}

/** Creates an event store. Options are validated and resolved once; it holds no connections. */
export function createEventStore(options: EventStoreOptions = {}): EventStore {
  return createEventStoreInternals(options).store;
}

/** @internal {@link createEventStore} with the hooks the Effect face needs. */
export function createEventStoreInternals(options: EventStoreOptions = {}): EventStoreInternals {
  const resolved = resolveEventStoreOptions(options);
  const n = resolved.names;
  const streams = sql.raw(n.streams);
  const events = sql.raw(n.events);
  const outbox = sql.raw(n.outbox);
  const snapshots = sql.raw(n.snapshots);
  const keySequences = sql.raw(n.keySequences);

  // Checked on the first call of this store, not at creation (it holds no connection): an
  // unmigrated database then fails with SchemaVersionError naming the fix, not with pg's
  // `relation "eventlane.key_sequences" does not exist` (42P01) from whichever statement ran first.
  // A failed check is forgotten, so a call after `migrateToLatest` (or a database that came back)
  // checks again; concurrent first calls share one check.
  let schemaChecked = false;
  let schemaCheck: Promise<void> | undefined;
  const checkSchema = (db: Executor): Promise<void> => {
    schemaCheck ??= fromDatabase(() => checkSchemaVersion(db, n)).then(
      () => {
        schemaChecked = true;
      },
      (error: unknown) => {
        schemaCheck = undefined;
        throw error;
      },
    );
    return schemaCheck;
  };

  const currentVersion = async (trx: Executor, streamId: string): Promise<number> => {
    const r = await execute(trx, sql<StreamRow>`SELECT version FROM ${streams} WHERE stream_id = ${streamId}`);
    return r.rows[0]?.version ?? 0;
  };

  const notify = (trx: Executor) => execute(trx, sql`SELECT pg_notify(${n.notifyChannel}, '')`);

  /** Moves the stream's version from its expected value to `expected + count`; returns the first new version. */
  const claimVersions = async (
    trx: Executor,
    streamType: string,
    streamId: string,
    expected: ExpectedVersion,
    count: number,
  ): Promise<number> => {
    if (expected === "any") {
      const r = await execute(
        trx,
        sql<StreamRow>`
        INSERT INTO ${streams} AS s (stream_id, stream_type, version) VALUES (${streamId}, ${streamType}, ${count})
        ON CONFLICT (stream_id) DO UPDATE SET version = s.version + ${count}, updated_at = now()
        RETURNING version`,
      );
      return (r.rows[0]?.version ?? count) - count + 1;
    }
    if (expected === "no_stream" || expected === 0) {
      const r = await execute(
        trx,
        sql<StreamRow>`
        INSERT INTO ${streams} (stream_id, stream_type, version) VALUES (${streamId}, ${streamType}, ${count})
        ON CONFLICT (stream_id) DO NOTHING RETURNING version`,
      );
      if (r.rows.length === 1) return 1;
    } else {
      const r = await execute(
        trx,
        sql<StreamRow>`
        UPDATE ${streams} SET version = ${expected + count}, updated_at = now()
        WHERE stream_id = ${streamId} AND version = ${expected} RETURNING version`,
      );
      if (r.rows.length === 1) return expected + 1;
    }
    const actual = await currentVersion(trx, streamId);
    const exp = expected === 0 ? "no_stream" : expected;
    throw new ConcurrencyError({
      streamId,
      expected: exp,
      actual,
      message: `stream "${streamId}" is at version ${actual}, expected ${exp === "no_stream" ? "no stream" : exp}: reload it and decide again`,
    });
  };

  const appendToStream: EventStore["appendToStream"] = async (db, aggregate, streamId, evts, options = {}) => {
    validateStreamId(streamId);
    const expected = validateExpected(options.expectedVersion ?? "any");
    if (evts.length === 0) {
      if (!schemaChecked) await checkSchema(db);
      const version = await currentVersion(db, streamId);
      return { nextVersion: version, eventIds: [], outboxIds: [] };
    }
    const known = aggregate.events.map((d) => d.type);
    // Everything that can fail on input fails here, before a statement runs.
    const rows = evts.map((e) => {
      const def = aggregate.definition(e.type);
      if (def === undefined) {
        throw new UnknownEventTypeError({
          eventType: e.type,
          known,
          message: `aggregate "${aggregate.type}" has no event "${e.type}"; its events are: ${known.join(", ")}`,
        });
      }
      const payload = serializePayload(def, e.data, resolved.maxPayloadBytes);
      const headers = metadataToHeaders({ ...options.metadata, ...e.metadata });
      return { def, payload, headers: serializeHeaders(def.type, headers), eventId: uuidv7() };
    });
    const keyHash = murmur2(streamId);
    if (!schemaChecked) await checkSchema(db);
    return inTransaction(db, async (trx) => {
      const first = await claimVersions(trx, aggregate.type, streamId, expected, rows.length);
      const versions = rows.map((_, i) => first + i);
      // The payload goes in as the writer's JSON text into a json column (not jsonb), so the relay
      // sends these bytes, exactly as it sends an enqueued event's.
      const r = await execute(
        trx,
        sql<{ id: string }>`
        WITH ev AS (
          INSERT INTO ${events} (stream_id, version, event_id, event_type, schema_version, payload, metadata)
          SELECT ${streamId}, u.v, u.id, u.t, u.sv, u.p, u.h
          FROM unnest(${versions}::int[], ${rows.map((x) => x.eventId)}::uuid[], ${rows.map((x) => x.def.type)}::text[],
                      ${rows.map((x) => x.def.version)}::int[], ${rows.map((x) => x.payload)}::json[], ${rows.map((x) => x.headers)}::jsonb[])
               WITH ORDINALITY AS u(v, id, t, sv, p, h, o)
          ORDER BY u.o
        )
        INSERT INTO ${outbox} (event_id, topic, key, key_hash, event_type, schema_version, aggregate_type, aggregate_id, aggregate_version, headers)
        SELECT u.id, u.topic, ${streamId}, ${keyHash}, u.t, u.sv, ${aggregate.type}, ${streamId}, u.v, u.h
        FROM unnest(${versions}::int[], ${rows.map((x) => x.eventId)}::uuid[], ${rows.map((x) => x.def.type)}::text[],
                    ${rows.map((x) => x.def.version)}::int[], ${rows.map((x) => x.def.route.topic)}::text[], ${rows.map((x) => x.headers)}::jsonb[])
             WITH ORDINALITY AS u(v, id, t, sv, topic, h, o)
        ORDER BY u.o
        RETURNING id`,
      );
      if (resolved.notify) await notify(trx);
      return {
        nextVersion: first + rows.length - 1,
        eventIds: rows.map((x) => x.eventId),
        outboxIds: r.rows.map((x) => String(x.id)),
      };
    });
  };

  const readStream: EventStore["readStream"] = async (db, aggregate, streamId, options = {}) => {
    validateStreamId(streamId);
    const from = options.fromVersion ?? 1;
    if (!schemaChecked) await checkSchema(db);
    const r = await execute(
      db,
      sql<{
        version: number;
        event_id: string;
        event_type: string;
        schema_version: number;
        payload: unknown;
        metadata: Record<string, string>;
        created_at: Date;
      }>`
      SELECT version, event_id, event_type, schema_version, payload, metadata, created_at
      FROM ${events} WHERE stream_id = ${streamId} AND version >= ${from} ORDER BY version`,
    );
    const known = aggregate.events.map((d) => d.type);
    const out = r.rows.map((row) => {
      const def = aggregate.definition(row.event_type);
      if (def === undefined) {
        throw new UnknownEventTypeError({
          eventType: row.event_type,
          known,
          message: `stream "${streamId}" holds event "${row.event_type}" at version ${row.version}, which aggregate "${aggregate.type}" does not define`,
        });
      }
      const data = def.decode(row.payload, row.schema_version);
      const event = {
        type: row.event_type,
        data,
        metadata: metadataFromHeaders(row.metadata),
      } as unknown as AggregateEvent<typeof aggregate>;
      return {
        event,
        eventId: row.event_id,
        streamId,
        version: row.version,
        storedSchemaVersion: row.schema_version,
        createdAt: row.created_at,
      };
    });
    const version = out.length > 0 ? out[out.length - 1]!.version : await currentVersion(db, streamId);
    return { events: out, version };
  };

  const loadAggregate = async <A extends Aggregate<string, readonly EventDefinition[], unknown, unknown>>(
    db: Executor,
    aggregate: A,
    streamId: string,
    domain: DomainGuard,
  ): Promise<AggregateStreamResult<AggregateState<A>>> => {
    type S = AggregateState<A>;
    validateStreamId(streamId);
    if (!schemaChecked) await checkSchema(db);
    let state = domain(() => aggregate.initialState()) as S;
    let from = 1;
    let snapshotVersion: number | null = null;
    const snap = aggregate.snapshot;
    if (snap !== undefined) {
      const r = await execute(
        db,
        sql<{ version: number; snapshot_version: number; state: unknown }>`
        SELECT version, snapshot_version, state FROM ${snapshots} WHERE stream_id = ${streamId}`,
      );
      const row = r.rows[0];
      if (row !== undefined && row.snapshot_version === (snap.version ?? 1)) {
        state = decodeSnapshot(snap.schema, row.state) as S;
        from = row.version + 1;
        snapshotVersion = row.version;
      }
    }
    const read = await readStream(db, aggregate, streamId, { fromVersion: from });
    state = domain(() =>
      foldEvents(
        aggregate as unknown as { evolve: (s: S, e: unknown) => S },
        state,
        read.events.map((e) => e.event),
      ),
    );
    return { state, version: Math.max(read.version, snapshotVersion ?? 0), snapshotVersion };
  };

  const aggregateStream: EventStore["aggregateStream"] = (db, aggregate, streamId) =>
    loadAggregate(db, aggregate, streamId, unguarded);

  const handleWith =
    (domain: DomainGuard): EventStore["handle"] =>
    async (db, aggregate, streamId, command, options = {}) => {
      type S = AggregateState<typeof aggregate>;
      type E = AggregateEvent<typeof aggregate>;
      const retries = options.retries ?? 0;
      if (!Number.isInteger(retries) || retries < 0) {
        throw new InvalidOptionError({ option: "retries", message: `retries must be an integer >= 0; got ${retries}` });
      }
      validateStreamId(streamId);
      if (!schemaChecked) await checkSchema(db);
      const canRetry = !db.isTransaction;
      for (let attempt = 0; ; attempt++) {
        try {
          return await inTransaction(db, async (trx) => {
            const loaded = await loadAggregate(trx, aggregate, streamId, domain);
            const decider = aggregate as unknown as {
              decide: (c: unknown, s: S) => E | readonly E[];
              evolve: (s: S, e: E) => S;
            };
            const produced = domain(() => asEventArray(decider.decide(command, loaded.state)));
            if (produced.length === 0) return { state: loaded.state, version: loaded.version, events: [] };
            const appended = await appendToStream(trx, aggregate, streamId, produced, {
              expectedVersion: loaded.version === 0 ? "no_stream" : loaded.version,
              ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
            });
            const state = domain(() => foldEvents(decider, loaded.state, produced));
            const snap = aggregate.snapshot;
            if (
              snap !== undefined &&
              Math.floor(appended.nextVersion / snap.every) > Math.floor(loaded.version / snap.every)
            ) {
              const json = JSON.stringify(encodeSnapshot(snap.schema, state));
              await execute(
                trx,
                sql`
              INSERT INTO ${snapshots} AS s (stream_id, version, snapshot_version, state)
              VALUES (${streamId}, ${appended.nextVersion}, ${snap.version ?? 1}, ${json}::jsonb)
              ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, snapshot_version = excluded.snapshot_version,
                state = excluded.state, created_at = now()`,
              );
            }
            return { state, version: appended.nextVersion, events: produced };
          });
        } catch (error) {
          if (error instanceof ConcurrencyError && canRetry && attempt < retries) continue;
          throw error;
        }
      }
    };

  const handle = handleWith(unguarded);

  const enqueue: EventStore["enqueue"] = async (db, definition, data, options = {}) => {
    const payload = serializePayload(definition, data, resolved.maxPayloadBytes);
    const key = options.key ?? definition.route.key?.(data);
    if (typeof key !== "string" || key.length === 0) {
      throw new InvalidOptionError({
        option: "key",
        message: `event "${definition.type}": no Kafka key: pass options.key or give the definition a route.key`,
      });
    }
    const headers = serializeHeaders(definition.type, metadataToHeaders(options.metadata));
    const eventId = uuidv7();
    const topic = definition.route.topic;
    // The sequence upsert runs before the outbox row takes its id, so a same-key writer waits on
    // the sequence row's lock and gets a higher id and sequence than the transaction it waited for.
    const notifyJoin = resolved.notify
      ? sql`CROSS JOIN LATERAL (SELECT pg_notify(${n.notifyChannel}, '')) AS notified`
      : sql``;
    if (!schemaChecked) await checkSchema(db);
    const r = await execute(
      db,
      sql<{ id: string; key_sequence: string }>`
      WITH seq AS (
        INSERT INTO ${keySequences} AS k (topic, key, last_sequence) VALUES (${topic}, ${key}, 1)
        ON CONFLICT (topic, key) DO UPDATE SET last_sequence = k.last_sequence + 1
        RETURNING last_sequence
      )
      INSERT INTO ${outbox} (event_id, topic, key, key_hash, event_type, schema_version, key_sequence, payload, headers)
      SELECT ${eventId}::uuid, ${topic}, ${key}, ${murmur2(key)}, ${definition.type}, ${definition.version}, seq.last_sequence, ${payload}::json, ${headers}::jsonb
      FROM seq ${notifyJoin}
      RETURNING id, key_sequence`,
    );
    const row = r.rows[0]!;
    return { outboxId: String(row.id), eventId, sequence: Number(row.key_sequence) };
  };

  const store: EventStore = Object.freeze({
    options: resolved,
    appendToStream,
    readStream,
    aggregateStream,
    handle,
    enqueue,
  });
  return Object.freeze({
    store,
    handleRejecting: (reject: (thrown: unknown) => unknown) =>
      handleWith((run) => {
        try {
          return run();
        } catch (error) {
          throw reject(error);
        }
      }),
  });
}

function metadataFromHeaders(headers: Record<string, string> | null): EventMetadata | undefined {
  if (headers === null || Object.keys(headers).length === 0) return undefined;
  return { headers };
}

function encodeSnapshot(schema: PayloadSchema, state: unknown): unknown {
  return Schema.encodeUnknownSync(schema as unknown as Schema.Codec<unknown, unknown>)(state);
}

function decodeSnapshot(schema: PayloadSchema, stored: unknown): unknown {
  return Schema.decodeUnknownSync(schema as unknown as Schema.Codec<unknown, unknown>)(stored);
}
