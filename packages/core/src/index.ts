export * from "./errors.ts";
export { Headers, metadataToHeaders, type EventMetadata, type HeaderName } from "./headers.ts";
export { resolveTableNames, validateIdentifier, type SchemaOptions, type TableNames } from "./schema/names.ts";
export {
  SCHEMA_VERSION,
  assertSchemaVersion,
  eventlaneDdl,
  eventlaneMigrations,
  migrateToLatest,
} from "./schema/migrations.ts";
export {
  defineEvent,
  upcaster,
  type DomainEvent,
  type EventDefinition,
  type EventDefinitionConfig,
  type EventOf,
  type EventRoute,
  type EventUpcaster,
  type PayloadSchema,
} from "./event/define-event.ts";
export {
  asEventArray,
  defineAggregate,
  foldEvents,
  type Aggregate,
  type AggregateCommand,
  type AggregateConfig,
  type AggregateEvent,
  type AggregateState,
  type Decider,
  type SnapshotConfig,
} from "./aggregate/define-aggregate.ts";
export { resolveEventStoreOptions, type EventStoreOptions, type ResolvedEventStoreOptions } from "./store/options.ts";
export {
  createEventStore,
  type AggregateStreamResult,
  type AppendOptions,
  type AppendResult,
  type EnqueueOptions,
  type EnqueueResult,
  type EventStore,
  type Executor,
  type ExpectedVersion,
  type HandleOptions,
  type HandleResult,
  type ReadStreamResult,
  type StoredEvent,
} from "./store/event-store.ts";
export {
  EventStoreService,
  makeEventStoreService,
  type EventStoreServiceShape,
  type ReadFailure,
  type WriteFailure,
} from "./effect/event-store-service.ts";
