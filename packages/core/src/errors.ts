import { Data } from "effect";

/**
 * Every error @eventlane/core raises carries a stable `code`: match on it (or on `_tag`), never on
 * the message. This is the complete list, one code per error class ({@link EventlaneError}).
 */
export const EventlaneErrorCodes = [
  "EVENTLANE_INVALID_OPTION",
  "EVENTLANE_INVALID_IDENTIFIER",
  "EVENTLANE_INVALID_PAYLOAD",
  "EVENTLANE_UNKNOWN_EVENT_TYPE",
  "EVENTLANE_CONCURRENCY",
  "EVENTLANE_SERIALIZATION",
  "EVENTLANE_PAYLOAD_TOO_LARGE",
  "EVENTLANE_UPCAST_MISSING",
  "EVENTLANE_SCHEMA_VERSION",
  "EVENTLANE_DATABASE",
  "EVENTLANE_DOMAIN_REJECTION",
] as const;
export type EventlaneErrorCode = (typeof EventlaneErrorCodes)[number];

/** An option is missing, of the wrong type or out of range. `option` names it. */
export class InvalidOptionError extends Data.TaggedError("InvalidOptionError")<{
  readonly option: string;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_INVALID_OPTION" as const;
}

/** A schema, table prefix or channel name that would reach SQL is not a plain lower-case identifier. */
export class InvalidIdentifierError extends Data.TaggedError("InvalidIdentifierError")<{
  readonly option: string;
  readonly value: string;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_INVALID_IDENTIFIER" as const;
}

/** A payload does not match its event's schema (at append/enqueue, or a stored one at load). */
export class InvalidPayloadError extends Data.TaggedError("InvalidPayloadError")<{
  readonly eventType: string;
  readonly schemaVersion: number;
  readonly issue: string;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_INVALID_PAYLOAD" as const;
}

/** An event type that the aggregate (or the list of known events) does not define. */
export class UnknownEventTypeError extends Data.TaggedError("UnknownEventTypeError")<{
  readonly eventType: string;
  readonly known: readonly string[];
  readonly message: string;
}> {
  readonly code = "EVENTLANE_UNKNOWN_EVENT_TYPE" as const;
}

/** The stream was not at the expected version: another writer appended first. Reload and retry. */
export class ConcurrencyError extends Data.TaggedError("ConcurrencyError")<{
  readonly streamId: string;
  readonly expected: number | "no_stream";
  readonly actual: number;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_CONCURRENCY" as const;
}

/** A payload or header could not be turned into JSON (a BigInt, a cycle, ...). */
export class SerializationError extends Data.TaggedError("SerializationError")<{
  readonly eventType: string;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_SERIALIZATION" as const;
}

/** A serialised payload is over the configured `maxPayloadBytes`. */
export class PayloadTooLargeError extends Data.TaggedError("PayloadTooLargeError")<{
  readonly eventType: string;
  readonly bytes: number;
  readonly limit: number;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_PAYLOAD_TOO_LARGE" as const;
}

/** A stored payload has a schema version the definition cannot upcast from. */
export class UpcastMissingError extends Data.TaggedError("UpcastMissingError")<{
  readonly eventType: string;
  readonly storedVersion: number;
  readonly currentVersion: number;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_UPCAST_MISSING" as const;
}

/** The database's Eventlane schema is not at the version this code needs. Run the migrations. */
export class SchemaVersionError extends Data.TaggedError("SchemaVersionError")<{
  readonly expected: number;
  readonly actual: number | null;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_SCHEMA_VERSION" as const;
}

/** Any error the write side raises. */
export type EventlaneWriteError =
  | InvalidPayloadError
  | UnknownEventTypeError
  | ConcurrencyError
  | SerializationError
  | PayloadTooLargeError;

/** Any error loading a stream raises. */
export type EventlaneReadError = InvalidPayloadError | UnknownEventTypeError | UpcastMissingError;

/** A database error under an Eventlane operation (connection lost, statement failed, ...). `cause` has it. */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly operation: string;
  readonly cause: unknown;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_DATABASE" as const;
}

/**
 * A decider threw while `handle` ran it (Effect API): `cause` is what it threw, whatever it is. Told
 * apart by where it was thrown (inside `decide`, `evolve` or `initialState`), never by its shape.
 */
export class DomainRejection extends Data.TaggedError("DomainRejection")<{
  readonly cause: unknown;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_DOMAIN_REJECTION" as const;
}

/** Every error class of @eventlane/core; its `code`s are exactly {@link EventlaneErrorCodes}. */
export type EventlaneError =
  | InvalidOptionError
  | InvalidIdentifierError
  | InvalidPayloadError
  | UnknownEventTypeError
  | ConcurrencyError
  | SerializationError
  | PayloadTooLargeError
  | UpcastMissingError
  | SchemaVersionError
  | DatabaseError
  | DomainRejection;

const ERROR_CLASSES = [
  InvalidOptionError,
  InvalidIdentifierError,
  InvalidPayloadError,
  UnknownEventTypeError,
  ConcurrencyError,
  SerializationError,
  PayloadTooLargeError,
  UpcastMissingError,
  SchemaVersionError,
  DatabaseError,
  DomainRejection,
] as const;

/** True for an instance of one of core's error classes (by class, not by the shape of its `code`). */
export function isEventlaneError(error: unknown): error is EventlaneError {
  return ERROR_CLASSES.some((E) => error instanceof E);
}
