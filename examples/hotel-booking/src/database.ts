import type { Generated } from "kysely";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";

/** Every table of the example, by schema: the API's (`hotel`) and each consumer's own. */
export interface HotelDatabase {
  /** The API's room allocation: the source of truth that refuses an overbooking. */
  "hotel.hotels": { hotel_id: string; name: string; rooms_total: number; rooms_available: number };
  /** The plain-table write style: a row per booking plus `enqueue` in the same transaction. */
  "hotel.bookings": {
    booking_id: string;
    hotel_id: string;
    guest_email: string;
    nights: number;
    status: "confirmed" | "cancelled";
    created_at: Generated<Date>;
  };
  /** Email service: the messages it would send. */
  "email.sent_emails": {
    id: Generated<string>;
    booking_id: string;
    kind: "confirmation" | "cancellation";
    to_address: string;
    subject: string;
    event_id: string;
    sent_at: Generated<Date>;
  };
  /** Inventory service: its own room count per hotel. */
  "inventory.rooms": { hotel_id: string; rooms_total: number; rooms_left: number };
  /** Analytics service: bookings per hotel. */
  "analytics.hotel_bookings": { hotel_id: string; bookings: number; cancellations: number; nights: number };
}

/** A Kysely instance over its own pool; `destroy()` ends the pool. */
export function createDatabase(url: string, max = 10): Kysely<HotelDatabase> {
  return new Kysely<HotelDatabase>({
    dialect: new PostgresDialect({
      pool: new pg.Pool({ connectionString: url, max, application_name: "hotel-booking" }),
    }),
  });
}
