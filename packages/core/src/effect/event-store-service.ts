import { Context, Data, Effect, Layer } from "effect";
import type { Aggregate, AggregateCommand, AggregateEvent, AggregateState } from "../aggregate/define-aggregate.ts";
import {
  ConcurrencyError,
  DatabaseError,
  InvalidOptionError,
  InvalidPayloadError,
  PayloadTooLargeError,
  SerializationError,
  UnknownEventTypeError,
  UpcastMissingError,
} from "../errors.ts";
import type { EventDefinition } from "../event/define-event.ts";
import {
  type AggregateStreamResult,
  type AppendOptions,
  type AppendResult,
  createEventStore,
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
  | DatabaseError;
/** Errors of loading a stream, as Effect failures. */
export type ReadFailure =
  | InvalidPayloadError
  | UnknownEventTypeError
  | UpcastMissingError
  | InvalidOptionError
  | DatabaseError;

/**
 * The event store as an Effect service: the same implementation as {@link createEventStore}, with
 * typed failures instead of rejections. A `Transaction` passed in keeps your writes and Eventlane's
 * in one transaction, exactly as with the Promise API.
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
  /** Fails with the decider's own error (as `unknown`) too, when `decide` throws. */
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

/** A decider threw while handling a command; `cause` is what it threw. */
export class DomainRejection extends Data.TaggedError("DomainRejection")<{
  readonly cause: unknown;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_DOMAIN_REJECTION" as const;
}

const KNOWN = [
  ConcurrencyError,
  InvalidPayloadError,
  UnknownEventTypeError,
  SerializationError,
  PayloadTooLargeError,
  InvalidOptionError,
  UpcastMissingError,
] as const;

function classify(operation: string, domain: boolean) {
  return (error: unknown) => {
    for (const E of KNOWN) if (error instanceof E) return error;
    if (isDatabaseError(error)) {
      return new DatabaseError({
        operation,
        cause: error,
        message: `${operation} failed in the database: ${(error as Error).message}`,
      });
    }
    if (domain)
      return new DomainRejection({ cause: error, message: error instanceof Error ? error.message : String(error) });
    return new DatabaseError({
      operation,
      cause: error,
      message: `${operation} failed: ${error instanceof Error ? error.message : String(error)}`,
    });
  };
}

/** pg errors carry a SQLSTATE `code` of five characters, or are connection errors. */
function isDatabaseError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const code = (error as { code?: unknown }).code;
  return (
    (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) ||
    (typeof code === "string" && code.startsWith("E")) ||
    error instanceof AggregateError
  );
}

/** Builds the service around one Promise implementation. */
export function makeEventStoreService(options: EventStoreOptions = {}): EventStoreServiceShape {
  const store = createEventStore(options);
  const lift = <A, E>(operation: string, domain: boolean, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: classify(operation, domain) }) as Effect.Effect<A, E>;
  return {
    options: store.options,
    promise: store,
    appendToStream: (db, aggregate, streamId, events, opts) =>
      lift("appendToStream", false, () => store.appendToStream(db, aggregate, streamId, events, opts)),
    readStream: (db, aggregate, streamId, opts) =>
      lift("readStream", false, () => store.readStream(db, aggregate, streamId, opts)),
    aggregateStream: (db, aggregate, streamId) =>
      lift("aggregateStream", false, () => store.aggregateStream(db, aggregate, streamId)),
    handle: (db, aggregate, streamId, command, opts) =>
      lift("handle", true, () => store.handle(db, aggregate, streamId, command, opts)),
    enqueue: (db, definition, data, opts) => lift("enqueue", false, () => store.enqueue(db, definition, data, opts)),
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
