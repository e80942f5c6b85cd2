import { defineAggregate, defineEvent } from "@eventlane/core";
import { Schema } from "effect";

/** Raised by the Booking decider; the API turns it into a 409. */
export class BookingRejected extends Error {
  readonly code = "BOOKING_REJECTED";
}

export type BookingState =
  | { readonly status: "none" }
  | {
      readonly status: "confirmed" | "cancelled";
      readonly hotelId: string;
      readonly guestEmail: string;
      readonly nights: number;
    };

export type BookingCommand =
  | {
      readonly kind: "confirm";
      readonly bookingId: string;
      readonly hotelId: string;
      readonly guestEmail: string;
      readonly nights: number;
    }
  | { readonly kind: "cancel"; readonly bookingId: string; readonly reason: string };

/**
 * The booking events and the event-sourced Booking aggregate, defined once for the API (writes),
 * the relay (headers) and the consumers (decoding). The topic comes from configuration, so the
 * definitions are built by a function rather than at import.
 */
export function hotelEvents(topic: string) {
  const BookingConfirmed = defineEvent({
    type: "booking_confirmed",
    schema: Schema.Struct({
      bookingId: Schema.String,
      hotelId: Schema.String,
      guestEmail: Schema.String,
      nights: Schema.Int,
    }),
    route: { topic, key: (e) => e.bookingId },
  });
  const BookingCancelled = defineEvent({
    type: "booking_cancelled",
    schema: Schema.Struct({ bookingId: Schema.String, hotelId: Schema.String, reason: Schema.String }),
    route: { topic, key: (e) => e.bookingId },
  });
  const Booking = defineAggregate({
    type: "booking",
    events: [BookingConfirmed, BookingCancelled],
    initialState: (): BookingState => ({ status: "none" }),
    evolve: (state, event): BookingState => {
      switch (event.type) {
        case "booking_confirmed":
          return {
            status: "confirmed",
            hotelId: event.data.hotelId,
            guestEmail: event.data.guestEmail,
            nights: event.data.nights,
          };
        case "booking_cancelled":
          return state.status === "none" ? state : { ...state, status: "cancelled" };
      }
    },
    decide: (command: BookingCommand, state) => {
      switch (command.kind) {
        case "confirm":
          if (state.status !== "none")
            throw new BookingRejected(`booking ${command.bookingId} is already ${state.status}`);
          return BookingConfirmed.make({
            bookingId: command.bookingId,
            hotelId: command.hotelId,
            guestEmail: command.guestEmail,
            nights: command.nights,
          });
        case "cancel":
          if (state.status !== "confirmed") throw new BookingRejected(`booking ${command.bookingId} is not confirmed`);
          return BookingCancelled.make({
            bookingId: command.bookingId,
            hotelId: state.hotelId,
            reason: command.reason,
          });
      }
    },
  });
  return { BookingConfirmed, BookingCancelled, Booking, events: [BookingConfirmed, BookingCancelled] as const };
}

export type HotelEvents = ReturnType<typeof hotelEvents>;
