import { migrateConsumerToLatest } from "@eventlane/consumer";
import { migrateToLatest } from "@eventlane/core";
import { Kafka, logLevel } from "kafkajs";
import { type Kysely, sql } from "kysely";
import { HOTELS } from "../config.ts";
import { CONSUMERS } from "../consumers/hotel-consumers.ts";
import type { HotelDatabase } from "../database.ts";

const APP_DDL = `
CREATE SCHEMA IF NOT EXISTS hotel;
CREATE TABLE IF NOT EXISTS hotel.hotels (
  hotel_id        text    PRIMARY KEY,
  name            text    NOT NULL,
  rooms_total     integer NOT NULL CHECK (rooms_total >= 0),
  -- Decremented by the booking's own transaction with "WHERE rooms_available > 0": the row lock
  -- serialises concurrent bookings of one hotel, so the last room goes to exactly one of them.
  rooms_available integer NOT NULL CHECK (rooms_available >= 0 AND rooms_available <= rooms_total)
);
CREATE TABLE IF NOT EXISTS hotel.bookings (
  booking_id  text        PRIMARY KEY,
  hotel_id    text        NOT NULL REFERENCES hotel.hotels,
  guest_email text        NOT NULL,
  nights      integer     NOT NULL CHECK (nights > 0),
  status      text        NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE SCHEMA IF NOT EXISTS email;
-- No unique constraint on purpose: exactly once comes from the consumer's watermark, and the demo
-- and test would see a second email if it did not.
CREATE TABLE IF NOT EXISTS email.sent_emails (
  id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  booking_id text        NOT NULL,
  kind       text        NOT NULL CHECK (kind IN ('confirmation', 'cancellation')),
  to_address text        NOT NULL,
  subject    text        NOT NULL,
  event_id   text        NOT NULL,
  sent_at    timestamptz NOT NULL DEFAULT now()
);

CREATE SCHEMA IF NOT EXISTS inventory;
CREATE TABLE IF NOT EXISTS inventory.rooms (
  hotel_id    text    PRIMARY KEY,
  rooms_total integer NOT NULL,
  rooms_left  integer NOT NULL CHECK (rooms_left >= 0)
);

CREATE SCHEMA IF NOT EXISTS analytics;
CREATE TABLE IF NOT EXISTS analytics.hotel_bookings (
  hotel_id      text    PRIMARY KEY,
  bookings      integer NOT NULL DEFAULT 0,
  cancellations integer NOT NULL DEFAULT 0,
  nights        integer NOT NULL DEFAULT 0
);
`;

/** Migrates Eventlane's tables, the API's and each consumer's tables (idempotent), and seeds the hotels. */
export async function migrateHotel(db: Kysely<HotelDatabase>): Promise<void> {
  await migrateToLatest(db);
  await sql.raw(APP_DDL).execute(db);
  for (const h of HOTELS) {
    await sql`INSERT INTO hotel.hotels (hotel_id, name, rooms_total, rooms_available)
              VALUES (${h.hotelId}, ${h.name}, ${h.rooms}, ${h.rooms}) ON CONFLICT DO NOTHING`.execute(db);
    await sql`INSERT INTO inventory.rooms (hotel_id, rooms_total, rooms_left)
              VALUES (${h.hotelId}, ${h.rooms}, ${h.rooms}) ON CONFLICT DO NOTHING`.execute(db);
  }
  for (const c of Object.values(CONSUMERS)) await migrateConsumerToLatest(db, { schema: c.inboxSchema });
}

/** Creates the bookings topic when it is missing (the broker does not auto-create topics). */
export async function ensureTopics(brokers: readonly string[], topic: string, partitions: number): Promise<void> {
  const admin = new Kafka({ clientId: "hotel-setup", brokers: [...brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const existing = await admin.listTopics();
    if (!existing.includes(topic)) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
      });
    }
  } finally {
    await admin.disconnect();
  }
}
