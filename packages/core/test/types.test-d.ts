import { Schema } from "effect";
import type { Kysely } from "kysely";
import { describe, expectTypeOf, it } from "vitest";
import {
  createEventStore,
  defineEvent,
  type AggregateEvent,
  type AggregateState,
  type EventlaneError,
  type EventlaneErrorCode,
} from "../src/index.ts";
import { Booking, BookingCancelled, BookingConfirmed, RoomCleaned } from "./fixtures/booking.ts";

declare const db: Kysely<{ bookings: { id: string } }>;
const store = createEventStore();

describe("compile-time guarantees", () => {
  it("rejects appending an event that is not part of the aggregate", () => {
    // @ts-expect-error room_cleaned is not one of Booking's events
    void store.appendToStream(db, Booking, "b-1", [RoomCleaned.make({ roomId: "r1" })]);
    void store.appendToStream(db, Booking, "b-1", [BookingCancelled.make({ bookingId: "b-1", reason: "ok" })]);
  });

  it("rejects an event definition without a route", () => {
    // @ts-expect-error route is required
    defineEvent({ type: "no_route", schema: Schema.Struct({ a: Schema.String }) });
    // @ts-expect-error route.topic is required
    defineEvent({ type: "no_topic", schema: Schema.Struct({ a: Schema.String }), route: {} });
  });

  it("types payloads from the one definition", () => {
    // @ts-expect-error nights must be a number
    BookingConfirmed.make({ bookingId: "b", hotelId: "h", guestEmail: "e", nights: "2" });
    // @ts-expect-error enqueue checks the payload against the definition
    void store.enqueue(db, BookingCancelled, { bookingId: "b" });
    expectTypeOf(
      BookingConfirmed.make({ bookingId: "b", hotelId: "h", guestEmail: "e", nights: 2 }).data.nights,
    ).toEqualTypeOf<number>();
  });

  it("narrows aggregate events and state", () => {
    expectTypeOf<AggregateEvent<typeof Booking>["type"]>().toEqualTypeOf<"booking_confirmed" | "booking_cancelled">();
    expectTypeOf<AggregateState<typeof Booking>["status"]>().toEqualTypeOf<"none" | "confirmed" | "cancelled">();
    // @ts-expect-error not a Booking command
    void store.handle(db, Booking, "b-1", { kind: "upgrade" });
  });

  it("gives every error class a code of the list, and the list no code without a class", () => {
    expectTypeOf<EventlaneError["code"]>().toEqualTypeOf<EventlaneErrorCode>();
  });
});
