import { Result, Schema } from "effect";
import { InvalidOptionError, InvalidPayloadError, UpcastMissingError } from "../errors.ts";
import type { EventMetadata } from "../headers.ts";

/** A schema whose payloads Eventlane can store: no services needed to decode or encode. */
export type PayloadSchema = Schema.ConstraintCodec<unknown, unknown, never, never>;

/**
 * Where an event goes in Kafka. `topic` is required: an event without a route does not compile.
 * `key` picks the message key for plain `enqueue`; event-sourced events are keyed by their stream id.
 */
export interface EventRoute<Data> {
  readonly topic: string;
  key?(data: Data): string;
}

/** Turns a stored payload of an older schema version into the next version's encoded payload. */
export interface EventUpcaster {
  /** The stored schema version this upcaster reads; it produces version `fromVersion + 1`. */
  readonly fromVersion: number;
  readonly upcast: (payload: unknown) => unknown;
}

/**
 * Declares how payloads stored at `fromVersion` become `fromVersion + 1`: the stored payload is
 * first decoded with `schema` (the old version's schema), then passed to `upcast`, whose result must
 * be the next version's encoded form.
 */
export function upcaster<S extends PayloadSchema>(
  fromVersion: number,
  schema: S,
  upcast: (old: S["Type"]) => unknown,
): EventUpcaster {
  const decode = Schema.decodeUnknownSync(schema as unknown as Schema.Codec<S["Type"], unknown>);
  return { fromVersion, upcast: (payload) => upcast(decode(payload)) };
}

/** An event as the application sees it: its type name, its decoded data and optional metadata. */
export interface DomainEvent<Type extends string = string, Data = unknown> {
  readonly type: Type;
  readonly data: Data;
  readonly metadata?: EventMetadata;
}

export interface EventDefinitionConfig<Type extends string, S extends PayloadSchema> {
  /** The event's name, stored with every event and sent as a header. */
  readonly type: Type;
  /**
   * The payload schema's version. Bump it when the payload changes shape and add an upcaster for
   * the version before.
   * @default 1
   */
  readonly version?: number;
  /** The payload schema (Effect Schema). */
  readonly schema: S;
  /** Where the event is published. Required. */
  readonly route: EventRoute<S["Type"]>;
  /** Upcasters from every older version still stored, one per version. */
  readonly upcasters?: readonly EventUpcaster[];
}

/** One event's definition: the single source of its name, schema, version and route. */
export interface EventDefinition<Type extends string = string, S extends PayloadSchema = PayloadSchema> {
  readonly type: Type;
  readonly version: number;
  readonly schema: S;
  readonly route: EventRoute<S["Type"]>;
  /** Builds a typed event of this definition. */
  make(data: S["Type"], metadata?: EventMetadata): DomainEvent<Type, S["Type"]>;
  /**
   * Validates `data` and encodes it for storage. Throws {@link InvalidPayloadError}.
   * @internal used by the store
   */
  encode(data: unknown): unknown;
  /**
   * Decodes a stored payload of `storedVersion`, upcasting older versions first. Throws
   * {@link InvalidPayloadError} or {@link UpcastMissingError}.
   */
  decode(payload: unknown, storedVersion: number): S["Type"];
}

/** The event type of a definition. */
export type EventOf<D> = D extends EventDefinition<infer T, infer S> ? DomainEvent<T, S["Type"]> : never;

const TYPE_RE = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/;

/**
 * Defines an event once: name, payload schema, schema version and route. Writers, the relay's
 * headers and consumers all use this definition.
 *
 * ```ts
 * const BookingConfirmed = defineEvent({
 *   type: "booking_confirmed",
 *   schema: Schema.Struct({ bookingId: Schema.String, hotelId: Schema.String }),
 *   route: { topic: "hotel.bookings", key: (e) => e.bookingId },
 * });
 * ```
 */
export function defineEvent<const Type extends string, S extends PayloadSchema>(
  config: EventDefinitionConfig<Type, S>,
): EventDefinition<Type, S> {
  if (typeof config.type !== "string" || !TYPE_RE.test(config.type)) {
    throw new InvalidOptionError({
      option: "type",
      message: `event type must match ${TYPE_RE}; got ${JSON.stringify(config.type)}`,
    });
  }
  const version = config.version ?? 1;
  if (!Number.isInteger(version) || version < 1) {
    throw new InvalidOptionError({
      option: "version",
      message: `event "${config.type}": version must be an integer >= 1; got ${version}`,
    });
  }
  if (typeof config.route?.topic !== "string" || config.route.topic.length === 0) {
    throw new InvalidOptionError({
      option: "route.topic",
      message: `event "${config.type}": route.topic must be a non-empty string`,
    });
  }
  const upcasters = new Map<number, EventUpcaster>();
  for (const u of config.upcasters ?? []) {
    if (!Number.isInteger(u.fromVersion) || u.fromVersion < 1 || u.fromVersion >= version) {
      throw new InvalidOptionError({
        option: "upcasters",
        message: `event "${config.type}": an upcaster's fromVersion must be an integer in [1, ${version - 1}]; got ${u.fromVersion}`,
      });
    }
    upcasters.set(u.fromVersion, u);
  }
  const codec = config.schema as unknown as Schema.Codec<S["Type"], unknown>;
  const encodeResult = Schema.encodeUnknownResult(codec);
  const decodeResult = Schema.decodeUnknownResult(codec);
  const invalid = (issue: string, storedVersion: number) =>
    new InvalidPayloadError({
      eventType: config.type,
      schemaVersion: storedVersion,
      issue,
      message: `event "${config.type}" (schema version ${storedVersion}): payload does not match its schema: ${issue}`,
    });

  return Object.freeze({
    type: config.type,
    version,
    schema: config.schema,
    route: config.route,
    make: (data: S["Type"], metadata?: EventMetadata) =>
      metadata === undefined ? { type: config.type, data } : { type: config.type, data, metadata },
    encode(data: unknown) {
      const r = encodeResult(data);
      if (Result.isFailure(r)) throw invalid(r.failure.message, version);
      return r.success;
    },
    decode(payload: unknown, storedVersion: number) {
      let current = payload;
      for (let v = storedVersion; v < version; v++) {
        const step = upcasters.get(v);
        if (step === undefined) {
          throw new UpcastMissingError({
            eventType: config.type,
            storedVersion,
            currentVersion: version,
            message: `event "${config.type}": a payload stored at schema version ${storedVersion} needs an upcaster from version ${v} to ${v + 1}`,
          });
        }
        try {
          current = step.upcast(current);
        } catch (cause) {
          throw invalid(
            `upcasting from version ${v} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
            storedVersion,
          );
        }
      }
      if (storedVersion > version) {
        throw new UpcastMissingError({
          eventType: config.type,
          storedVersion,
          currentVersion: version,
          message: `event "${config.type}": a payload stored at schema version ${storedVersion} is newer than this code's version ${version}; deploy the newer definition`,
        });
      }
      const r = decodeResult(current);
      if (Result.isFailure(r)) throw invalid(r.failure.message, storedVersion);
      return r.success;
    },
  });
}
