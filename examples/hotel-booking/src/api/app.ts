import { ConcurrencyError, createEventStore, type EventStore } from "@eventlane/core";
import { eventlane } from "@eventlane/fastify";
import Fastify, { type FastifyInstance } from "fastify";
import type { Kysely, Transaction } from "kysely";
import type { HotelDatabase } from "../database.ts";
import { BookingRejected, type HotelEvents } from "../domain/hotel-events.ts";

/** An API error with an HTTP status and a stable code. */
export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: string;
  constructor(statusCode: number, code: string, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
  }
}

export interface HotelApiOptions {
  readonly db: Kysely<HotelDatabase>;
  readonly events: HotelEvents;
  /** @default false */
  readonly logger?: boolean;
}

const STYLES = ["event-sourced", "table"] as const;
type Style = (typeof STYLES)[number];

const bookingBody = {
  type: "object",
  required: ["hotelId", "guestEmail", "nights"],
  additionalProperties: false,
  properties: {
    bookingId: { type: "string", minLength: 1, maxLength: 100, pattern: "^[A-Za-z0-9_-]+$" },
    hotelId: { type: "string", minLength: 1 },
    guestEmail: { type: "string", minLength: 3, maxLength: 200 },
    nights: { type: "integer", minimum: 1, maximum: 60 },
    style: { type: "string", enum: [...STYLES] },
  },
} as const;

interface BookingRequest {
  bookingId?: string;
  hotelId: string;
  guestEmail: string;
  nights: number;
  style?: Style;
}

/**
 * Takes one room of the hotel inside the booking's transaction. The conditional decrement locks the
 * hotel row, so concurrent bookings of the last room queue on it: the first commits, the others see
 * 0 and get a 409, and their transaction (booking row, events, outbox rows) rolls back whole.
 */
async function takeRoom(trx: Transaction<HotelDatabase>, hotelId: string): Promise<number> {
  const taken = await trx
    .updateTable("hotel.hotels")
    .set((eb) => ({ rooms_available: eb("rooms_available", "-", 1) }))
    .where("hotel_id", "=", hotelId)
    .where("rooms_available", ">", 0)
    .returning("rooms_available")
    .executeTakeFirst();
  if (taken !== undefined) return taken.rooms_available;
  const hotel = await trx
    .selectFrom("hotel.hotels")
    .select("hotel_id")
    .where("hotel_id", "=", hotelId)
    .executeTakeFirst();
  if (hotel === undefined) throw new ApiError(404, "hotel_not_found", `no hotel ${hotelId}`);
  throw new ApiError(409, "no_rooms_left", `hotel ${hotelId} has no rooms left`);
}

async function releaseRoom(trx: Transaction<HotelDatabase>, hotelId: string): Promise<void> {
  await trx
    .updateTable("hotel.hotels")
    .set((eb) => ({ rooms_available: eb("rooms_available", "+", 1) }))
    .where("hotel_id", "=", hotelId)
    .execute();
}

/** Builds the booking API: confirm, cancel and read bookings, plus Eventlane's health and metrics routes. */
export async function buildHotelApi(options: HotelApiOptions): Promise<FastifyInstance> {
  const { db, events } = options;
  const { Booking, BookingConfirmed, BookingCancelled } = events;
  const store: EventStore = createEventStore();
  const app = Fastify({ logger: options.logger ?? false });
  await app.register(eventlane, { db, store });

  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof ApiError)
      return reply.code(error.statusCode).send({ error: error.code, message: error.message });
    if (error instanceof BookingRejected)
      return reply.code(409).send({ error: "booking_rejected", message: error.message });
    if (error instanceof ConcurrencyError)
      return reply.code(409).send({ error: "concurrent_change", message: error.message });
    const e = error as { validation?: unknown; statusCode?: number; message: string };
    if (e.validation !== undefined) return reply.code(400).send({ error: "invalid_request", message: e.message });
    app.log.error(error);
    return reply.code(500).send({ error: "internal", message: "internal error" });
  });

  const streamVersion = async (trx: Kysely<HotelDatabase> | Transaction<HotelDatabase>, bookingId: string) =>
    (await store.aggregateStream(trx, Booking, bookingId)).version;

  app.post<{ Body: BookingRequest }>("/bookings", { schema: { body: bookingBody } }, async (request, reply) => {
    const { hotelId, guestEmail, nights } = request.body;
    const style = request.body.style ?? "event-sourced";
    const bookingId = request.body.bookingId ?? crypto.randomUUID();
    const result = await db.transaction().execute(async (trx) => {
      const roomsLeft = await takeRoom(trx, hotelId);
      const existing = await trx
        .selectFrom("hotel.bookings")
        .select("booking_id")
        .where("booking_id", "=", bookingId)
        .executeTakeFirst();
      if (existing !== undefined || (await streamVersion(trx, bookingId)) > 0) {
        throw new ApiError(409, "booking_exists", `booking ${bookingId} already exists`);
      }
      if (style === "event-sourced") {
        const r = await store.handle(trx, Booking, bookingId, {
          kind: "confirm",
          bookingId,
          hotelId,
          guestEmail,
          nights,
        });
        return { version: r.version, roomsLeft };
      }
      await trx
        .insertInto("hotel.bookings")
        .values({ booking_id: bookingId, hotel_id: hotelId, guest_email: guestEmail, nights, status: "confirmed" })
        .execute();
      const r = await store.enqueue(trx, BookingConfirmed, { bookingId, hotelId, guestEmail, nights });
      return { sequence: r.sequence, roomsLeft };
    });
    return reply.code(201).send({ bookingId, hotelId, style, status: "confirmed", ...result });
  });

  app.post<{ Params: { id: string }; Body: { reason?: string } | undefined }>(
    "/bookings/:id/cancel",
    async (request) => {
      const bookingId = request.params.id;
      const reason = request.body?.reason ?? "guest cancelled";
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .selectFrom("hotel.bookings")
          .select(["hotel_id", "status"])
          .where("booking_id", "=", bookingId)
          .forUpdate()
          .executeTakeFirst();
        if (row !== undefined) {
          if (row.status !== "confirmed")
            throw new ApiError(409, "booking_rejected", `booking ${bookingId} is not confirmed`);
          await trx
            .updateTable("hotel.bookings")
            .set({ status: "cancelled" })
            .where("booking_id", "=", bookingId)
            .execute();
          await store.enqueue(trx, BookingCancelled, { bookingId, hotelId: row.hotel_id, reason });
          await releaseRoom(trx, row.hotel_id);
          return { bookingId, style: "table", status: "cancelled" };
        }
        const r = await store.handle(trx, Booking, bookingId, { kind: "cancel", bookingId, reason });
        if (r.state.status === "none") throw new ApiError(404, "booking_not_found", `no booking ${bookingId}`);
        await releaseRoom(trx, r.state.hotelId);
        return { bookingId, style: "event-sourced", status: "cancelled", version: r.version };
      });
    },
  );

  app.get<{ Params: { id: string } }>("/bookings/:id", async (request) => {
    const bookingId = request.params.id;
    const row = await db
      .selectFrom("hotel.bookings")
      .selectAll()
      .where("booking_id", "=", bookingId)
      .executeTakeFirst();
    if (row !== undefined) {
      return {
        bookingId,
        style: "table",
        status: row.status,
        hotelId: row.hotel_id,
        guestEmail: row.guest_email,
        nights: row.nights,
      };
    }
    const { state, version } = await store.aggregateStream(db, Booking, bookingId);
    if (state.status === "none") throw new ApiError(404, "booking_not_found", `no booking ${bookingId}`);
    return { bookingId, style: "event-sourced", version, ...state };
  });

  app.get<{ Params: { id: string } }>("/hotels/:id", async (request) => {
    const hotel = await db
      .selectFrom("hotel.hotels")
      .selectAll()
      .where("hotel_id", "=", request.params.id)
      .executeTakeFirst();
    if (hotel === undefined) throw new ApiError(404, "hotel_not_found", `no hotel ${request.params.id}`);
    return {
      hotelId: hotel.hotel_id,
      name: hotel.name,
      roomsTotal: hotel.rooms_total,
      roomsAvailable: hotel.rooms_available,
    };
  });

  return app;
}
