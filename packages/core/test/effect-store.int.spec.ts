import { Cause, Effect, Exit } from "effect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConcurrencyError,
  DatabaseError,
  defineAggregate,
  DomainRejection,
  EventStoreService,
  InvalidPayloadError,
  migrateToLatest,
} from "../src/index.ts";
import { Booking, BookingCancelled, BookingConfirmed, BookingRejected } from "./fixtures/booking.ts";
import { type CoreTestDb, setupCoreDb } from "./fixtures/db.ts";

let t: CoreTestDb;
beforeAll(async () => {
  t = await setupCoreDb();
});
afterAll(async () => {
  await t.close();
});

const run = <A, E>(effect: Effect.Effect<A, E, EventStoreService>) =>
  Effect.runPromiseExit(Effect.provide(effect, EventStoreService.layer({ notify: false })));

const confirm = { kind: "confirm", bookingId: "fx-1", hotelId: "h1", guestEmail: "fx@example.com", nights: 2 } as const;

describe("EventStoreService (Effect face)", () => {
  it("handles a command and appends in the caller's transaction", async () => {
    const exit = await run(
      Effect.gen(function* () {
        const store = yield* EventStoreService;
        return yield* store.handle(t.db, Booking, "booking-fx-1", confirm);
      }),
    );
    expect(Exit.isSuccess(exit)).toBe(true);
    if (Exit.isSuccess(exit)) expect(exit.value.version).toBe(1);
    const rows = await sql<{
      n: string;
    }>`SELECT count(*) AS n FROM eventlane.outbox WHERE key = 'booking-fx-1'`.execute(t.db);
    expect(rows.rows[0]?.n).toBe("1");
  });

  it("fails with typed errors: a conflict, an invalid payload, a rejected command", async () => {
    const conflict = await run(
      Effect.gen(function* () {
        const store = yield* EventStoreService;
        return yield* store.appendToStream(
          t.db,
          Booking,
          "booking-fx-1",
          [BookingConfirmed.make({ ...confirm, bookingId: "fx-1" })],
          {
            expectedVersion: "no_stream",
          },
        );
      }).pipe(Effect.flip),
    );
    expect(Exit.isSuccess(conflict) && conflict.value).toBeInstanceOf(ConcurrencyError);

    const invalid = await run(
      Effect.gen(function* () {
        const store = yield* EventStoreService;
        return yield* store.enqueue(t.db, BookingConfirmed, { ...confirm, nights: -0.5 });
      }).pipe(Effect.flip),
    );
    expect(Exit.isSuccess(invalid) && invalid.value).toBeInstanceOf(InvalidPayloadError);

    const rejected = await run(
      Effect.gen(function* () {
        const store = yield* EventStoreService;
        return yield* store.handle(t.db, Booking, "booking-fx-1", confirm);
      }).pipe(Effect.flip),
    );
    expect(Exit.isSuccess(rejected) && rejected.value).toBeInstanceOf(DomainRejection);
    expect(Exit.isSuccess(rejected) && (rejected.value as DomainRejection).cause).toBeInstanceOf(BookingRejected);
  });

  it("classifies what a decider throws as DomainRejection whatever its code looks like", async () => {
    // Objects with a `code` shaped like pg's (an "E..." errno, a five-character SQLSTATE): the old
    // shape check took them for database errors.
    for (const thrown of [{ code: "EXPIRED" }, { code: "42P01", message: "looks like SQL" }, "just a string"]) {
      const Expiring = defineAggregate({
        type: "expiring",
        events: [BookingCancelled],
        initialState: () => null,
        evolve: (s) => s,
        decide: (_command: { readonly kind: "expire" }) => {
          throw thrown;
        },
      });
      const exit = await run(
        Effect.gen(function* () {
          const store = yield* EventStoreService;
          return yield* store.handle(t.db, Expiring, "expiring-1", { kind: "expire" });
        }).pipe(Effect.flip),
      );
      expect(Exit.isSuccess(exit) && exit.value).toBeInstanceOf(DomainRejection);
      expect(Exit.isSuccess(exit) && exit.value).toMatchObject({ code: "EVENTLANE_DOMAIN_REJECTION", cause: thrown });
    }
  });

  it("keeps the Promise face's handle throwing the decider's own error", async () => {
    const exit = await run(
      Effect.gen(function* () {
        const store = yield* EventStoreService;
        yield* store.handle(t.db, Booking, "booking-fx-promise", confirm);
        return yield* Effect.promise(() =>
          store.promise.handle(t.db, Booking, "booking-fx-promise", confirm).then(
            () => undefined,
            (e: unknown) => e,
          ),
        );
      }),
    );
    expect(Exit.isSuccess(exit) && exit.value).toBeInstanceOf(BookingRejected);
  });

  it("classifies a failing statement as DatabaseError by where it failed, with pg's error as cause", async () => {
    await migrateToLatest(t.db, { schema: "broken" });
    await sql`ALTER TABLE broken.key_sequences RENAME TO key_sequences_gone`.execute(t.db);
    const exit = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const store = yield* EventStoreService;
        return yield* store.enqueue(t.db, BookingCancelled, { bookingId: "fx-db", reason: "r" });
      }).pipe(Effect.flip, Effect.provide(EventStoreService.layer({ schema: "broken", notify: false }))),
    );
    expect(Exit.isSuccess(exit) && exit.value).toBeInstanceOf(DatabaseError);
    expect(Exit.isSuccess(exit) && exit.value).toMatchObject({
      code: "EVENTLANE_DATABASE",
      operation: "enqueue",
      cause: { code: "42P01" },
    });
  });

  it("surfaces a bug (neither core's error, nor the database's, nor the decider's) as a defect", async () => {
    const exit = await run(
      Effect.gen(function* () {
        const store = yield* EventStoreService;
        // Not an aggregate: `events` is missing, so the store fails on its own code.
        return yield* store.appendToStream(t.db, {} as typeof Booking, "booking-fx-bug", [
          BookingCancelled.make({ bookingId: "fx-bug", reason: "r" }),
        ]);
      }),
    );
    expect(Exit.isFailure(exit)).toBe(true);
    if (Exit.isFailure(exit)) {
      expect(exit.cause.reasons.some(Cause.isDieReason)).toBe(true);
      expect(exit.cause.reasons.some(Cause.isFailReason)).toBe(false);
    }
  });
});
