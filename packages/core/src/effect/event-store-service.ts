import { Context, Effect, Layer } from "effect";
import type { Aggregate, AggregateCommand, AggregateEvent, AggregateState } from "../aggregate/define-aggregate.ts";
import {
  type ConcurrencyError,
  DatabaseError,
  DomainRejection,
  type EventlaneError,
  type InvalidOptionError,
  type InvalidPayloadError,
  isEventlaneError,
  type PayloadTooLargeError,
  type SchemaVersionError,
  type SerializationError,
  type UnknownEventTypeError,
  type UpcastMissingError,
} from "../errors.ts";
import type { EventDefinition } from "../event/define-event.ts";
import { isDatabaseFailure } from "../store/database-failure.ts";
import {
  type AggregateStreamResult,
  type AppendOptions,
  type AppendResult,
  createEventStoreInternals,
  type EnqueueOptions,
  type EnqueueResult,
  type EventStore as PromiseEventStore,
  type Executor,
  type HandleOptions,
  type HandleResult,
  type ReadStreamResult,
} from "../store/event-store.ts";
import type { EventStoreOptions, ResolvedEventStoreOptions } from "../store/options.ts";

type AnyAggregate = Aggregate<string, readonly EventDefinition[], unknown, unknown>;

/** Errors of the write side, as Effect failures. */
export type WriteFailure =
  | ConcurrencyError
  | InvalidPayloadError
  | UnknownEventTypeError
  | SerializationError
  | PayloadTooLargeError
  | InvalidOptionError
  | SchemaVersionError
  | DatabaseError;
/** Errors of loading a stream, as Effect failures. */
export type ReadFailure =
  | InvalidPayloadError
  | UnknownEventTypeError
  | UpcastMissingError
  | InvalidOptionError
  | SchemaVersionError
  | DatabaseError;

/**
 * The event store as an Effect service: the same implementation as {@link createEventStore}, with
 * typed failures instead of rejections. A `Transaction` passed in keeps your writes and Eventlane's
 * in one transaction, exactly as with the Promise API. A rejection that is none of core's errors and
 * did not come from the database is a bug, and surfaces as a defect, not as a failure.
 */
export interface EventStoreServiceShape {
  readonly options: ResolvedEventStoreOptions;
  readonly promise: PromiseEventStore;
  appendToStream<A extends AnyAggregate>(
    db: Executor,
    aggregate: A,
    streamId: string,
    events: readonly AggregateEvent<A>[],
    options?: AppendOptions,
  ): Effect.Effect<AppendResult, WriteFailure>;
  readStream<A extends AnyAggregate>(
    db: Executor,
    aggregate: A,
    streamId: string,
    options?: { readonly fromVersion?: number },
  ): Effect.Effect<ReadStreamResult<AggregateEvent<A>>, ReadFailure>;
  aggregateStream<A extends AnyAggregate>(
    db: Executor,
    aggregate: A,
    streamId: string,
  ): Effect.Effect<AggregateStreamResult<AggregateState<A>>, ReadFailure>;
  /**
   * Fails with {@link DomainRejection} when the decider (`decide`, `evolve`, `initialState`) throws,
   * whatever it throws; `cause` holds it.
   */
  handle<A extends AnyAggregate>(
    db: Executor,
    aggregate: A,
    streamId: string,
    command: AggregateCommand<A>,
    options?: HandleOptions,
  ): Effect.Effect<HandleResult<AggregateState<A>, AggregateEvent<A>>, WriteFailure | ReadFailure | DomainRejection>;
  enqueue<D extends EventDefinition>(
    db: Executor,
    definition: D,
    data: D["schema"]["Type"],
    options?: EnqueueOptions,
  ): Effect.Effect<EnqueueResult, WriteFailure>;
}

/**
 * Maps a rejection to the failure channel, by class and by origin, never by the shape of a `code`:
 * core's own errors (including the `DomainRejection` that `handle` wraps around what a decider
 * threw) as they are, what a database call threw as {@link DatabaseError}. Anything else is a bug
 * and is returned as `undefined`: the caller makes it a defect.
 */
function classify(operation: string, error: unknown): EventlaneError | undefined {
  if (isEventlaneError(error)) return error;
  if (isDatabaseFailure(error)) {
    return new DatabaseError({
      operation,
      cause: error,
      message: `${operation} failed in the database: ${error instanceof Error ? error.message : String(error)}`,
    });
  }
  return undefined;
}

/** What a decider threw, as a `DomainRejection`; its message is the thrown error's (or the value itself). */
function toDomainRejection(thrown: unknown): DomainRejection {
  return new DomainRejection({ cause: thrown, message: describeThrown(thrown) });
}

function describeThrown(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === "object" && thrown !== null) {
    const message = (thrown as { message?: unknown }).message;
    if (typeof message === "string") return message;
    try {
      return JSON.stringify(thrown);
    } catch {
      return String(thrown);
    }
  }
  return String(thrown);
}

/** Builds the service around one Promise implementation. */
export function makeEventStoreService(options: EventStoreOptions = {}): EventStoreServiceShape {
  const { store, handleRejecting } = createEventStoreInternals(options);
  const rejectingHandle = handleRejecting(toDomainRejection);
  // `catch` throwing makes the rejection a defect (Effect.tryPromise's contract): that is where a
  // bug lands, instead of being dressed up as a DatabaseError.
  const lift = <A, E>(operation: string, run: () => Promise<A>) =>
    Effect.tryPromise({
      try: run,
      catch: (error) => {
        const failure = classify(operation, error);
        if (failure === undefined) throw error;
        return failure;
      },
    }) as Effect.Effect<A, E>;
  return {
    options: store.options,
    promise: store,
    appendToStream: (db, aggregate, streamId, events, opts) =>
      lift("appendToStream", () => store.appendToStream(db, aggregate, streamId, events, opts)),
    readStream: (db, aggregate, streamId, opts) =>
      lift("readStream", () => store.readStream(db, aggregate, streamId, opts)),
    aggregateStream: (db, aggregate, streamId) =>
      lift("aggregateStream", () => store.aggregateStream(db, aggregate, streamId)),
    handle: (db, aggregate, streamId, command, opts) =>
      lift("handle", () => rejectingHandle(db, aggregate, streamId, command, opts)),
    enqueue: (db, definition, data, opts) => lift("enqueue", () => store.enqueue(db, definition, data, opts)),
  };
}

/** The Effect service of the event store: `yield* EventStoreService` in an `Effect.gen`. */
export class EventStoreService extends Context.Service<EventStoreService, EventStoreServiceShape>()(
  "@eventlane/core/EventStoreService",
) {
  /** A layer providing the event store with these options. */
  static readonly layer = (options: EventStoreOptions = {}): Layer.Layer<EventStoreService> =>
    Layer.sync(EventStoreService, () => makeEventStoreService(options));
}
