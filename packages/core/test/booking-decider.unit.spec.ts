import { describe, expect, it } from "vitest";
import { DeciderSpecification } from "../src/testing/index.ts";
import { Booking, BookingCancelled, BookingConfirmed, BookingRejected } from "./fixtures/booking.ts";

const confirmed = BookingConfirmed.make({ bookingId: "b1", hotelId: "h1", guestEmail: "a@example.com", nights: 2 });
const spec = DeciderSpecification.for(Booking);

describe("Booking decider", () => {
  it("confirms a new booking", () => {
    spec
      .given([])
      .when({ kind: "confirm", bookingId: "b1", hotelId: "h1", guestEmail: "a@example.com", nights: 2 })
      .thenEmits([confirmed]);
  });

  it("refuses to confirm twice", () => {
    spec
      .given([confirmed])
      .when({ kind: "confirm", bookingId: "b1", hotelId: "h1", guestEmail: "a@example.com", nights: 2 })
      .thenThrows(BookingRejected);
  });

  it("cancels a confirmed booking and evolves the state", () => {
    const when = spec.given([confirmed]).when({ kind: "cancel", bookingId: "b1", reason: "ill" });
    when.thenEmits(BookingCancelled.make({ bookingId: "b1", reason: "ill" }));
    when.thenState((s) => expect(s).toEqual({ status: "cancelled", nights: 2, changes: 2 }));
  });

  it("produces nothing when there is nothing to do", () => {
    spec.given([]).when({ kind: "touch", bookingId: "b1" }).thenNothingHappened();
  });

  it("fails the specification when the events differ", () => {
    expect(() =>
      spec
        .given([])
        .when({ kind: "confirm", bookingId: "b1", hotelId: "h1", guestEmail: "a@example.com", nights: 3 })
        .thenEmits([confirmed]),
    ).toThrow(/emitted other events than expected/);
    // A decider that throws fails thenEmits as an assertion that names what it threw.
    expect(() => spec.given([]).when({ kind: "cancel", bookingId: "b1", reason: "x" }).thenEmits([])).toThrow(
      expect.objectContaining({
        code: "ERR_ASSERTION",
        message: expect.stringMatching(/decide threw .*not confirmed/),
      }),
    );
    expect(() => spec.given([]).when({ kind: "touch", bookingId: "b1" }).thenThrows()).toThrow(
      /expected decide to throw/,
    );
  });
});
