import { Effect, Exit } from "effect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConcurrencyError, DomainRejection, EventStoreService, InvalidPayloadError } from "../src/index.ts";
import { Booking, BookingConfirmed, BookingRejected } from "./fixtures/booking.ts";
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
});
