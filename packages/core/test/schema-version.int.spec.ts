import { Cause, Effect, Exit } from "effect";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "@eventlane/test-kit";
import {
  createEventStore,
  EventStoreService,
  migrateToLatest,
  SCHEMA_VERSION,
  SchemaVersionError,
  type EventStore,
} from "../src/index.ts";
import { Booking, BookingCancelled, BookingConfirmed } from "./fixtures/booking.ts";

// A database of this file's own that nobody migrates (each test that needs tables migrates a
// schema of its own), so the store meets what a service deployed before its migrations meets.
let database: TestDatabase;
let db: Kysely<unknown>;
/** Every statement `db` ran, in order, so a test can count the schema checks. */
const statements: string[] = [];
const schemaChecks = () => statements.filter((s) => s.includes("to_regclass")).length;

beforeAll(async () => {
  database = await createTestDatabase("el_core_schema");
  const pool = new pg.Pool({ connectionString: database.url, max: 4 });
  pool.on("error", () => undefined);
  db = new Kysely({
    dialect: new PostgresDialect({ pool }),
    log: (event) => {
      statements.push(event.query.sql);
    },
  });
});
afterAll(async () => {
  await db.destroy();
  await database.drop();
});

const cancelled = { bookingId: "s-1", reason: "r" };
const calls: readonly [string, (store: EventStore) => Promise<unknown>][] = [
  ["enqueue", (store) => store.enqueue(db, BookingCancelled, cancelled)],
  ["appendToStream", (store) => store.appendToStream(db, Booking, "booking-s-1", [BookingCancelled.make(cancelled)])],
  ["appendToStream of no events", (store) => store.appendToStream(db, Booking, "booking-s-1", [])],
  ["readStream", (store) => store.readStream(db, Booking, "booking-s-1")],
  ["aggregateStream", (store) => store.aggregateStream(db, Booking, "booking-s-1")],
  [
    "handle",
    (store) =>
      store.handle(db, Booking, "booking-s-1", {
        kind: "confirm",
        bookingId: "s-1",
        hotelId: "h1",
        guestEmail: "s@example.com",
        nights: 1,
      }),
  ],
  [
    "enqueue in the caller's transaction",
    (store) => db.transaction().execute((trx) => store.enqueue(trx, BookingCancelled, cancelled)),
  ],
];

describe("the event store on a database that was not migrated", () => {
  it.each(calls)(
    "%s fails with SchemaVersionError saying to run the migrations, not with pg's 42P01",
    async (_name, call) => {
      const error = await call(createEventStore({ notify: false })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SchemaVersionError);
      expect(error).toMatchObject({ code: "EVENTLANE_SCHEMA_VERSION", expected: SCHEMA_VERSION, actual: null });
      expect((error as SchemaVersionError).message).toMatch(
        /tables are missing in schema "eventlane": run migrateToLatest\(\)/,
      );
    },
  );

  it("fails the Effect face with SchemaVersionError in the failure channel", async () => {
    const exit = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const store = yield* EventStoreService;
        return yield* store.enqueue(db, BookingCancelled, cancelled);
      }).pipe(Effect.provide(EventStoreService.layer({ notify: false }))),
    );
    expect(Exit.isFailure(exit)).toBe(true);
    if (Exit.isFailure(exit)) {
      const failure = exit.cause.reasons.find(Cause.isFailReason)?.error;
      expect(failure).toBeInstanceOf(SchemaVersionError);
    }
  });

  it("checks again after a failed check, and only once per store after a good one", async () => {
    const options = { schema: "recheck", notify: false };
    const store = createEventStore(options);
    await expect(store.enqueue(db, BookingCancelled, cancelled)).rejects.toBeInstanceOf(SchemaVersionError);
    await migrateToLatest(db, { schema: "recheck" });
    // The failure was not remembered: the same store checks again and now writes.
    statements.length = 0;
    expect((await store.enqueue(db, BookingCancelled, cancelled)).sequence).toBe(1);
    expect(schemaChecks()).toBe(1);
    // The good check is remembered: this store no longer reads schema_info, a new store does.
    await sql`UPDATE recheck.schema_info SET version = 1`.execute(db);
    expect((await store.enqueue(db, BookingCancelled, cancelled)).sequence).toBe(2);
    await store.readStream(db, Booking, "booking-s-1");
    expect(schemaChecks()).toBe(1);
    const error = await createEventStore(options)
      .enqueue(db, BookingCancelled, cancelled)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaVersionError);
    expect(error).toMatchObject({ expected: SCHEMA_VERSION, actual: 1 });
    expect((error as SchemaVersionError).message).toMatch(
      new RegExp(`schema "recheck" is at version 1, this code needs ${SCHEMA_VERSION}: run the migrations`),
    );
  });

  it("shares one check between concurrent first calls", async () => {
    await migrateToLatest(db, { schema: "shared_check" });
    const store = createEventStore({ schema: "shared_check", notify: false });
    statements.length = 0;
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        store.enqueue(db, BookingConfirmed, {
          bookingId: `c-${i}`,
          hotelId: "h1",
          guestEmail: "c@example.com",
          nights: 1,
        }),
      ),
    );
    expect(results.map((r) => r.sequence)).toEqual(Array(8).fill(1));
    expect(schemaChecks()).toBe(1);
  });
});
