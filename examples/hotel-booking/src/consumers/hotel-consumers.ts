import { type Consumer, type ConsumerKafkaOptions, createConsumer } from "@eventlane/consumer";
import { type Kysely, sql, type Transaction } from "kysely";
import type { HotelDatabase } from "../database.ts";
import type { HotelEvents } from "../domain/hotel-events.ts";

/** The three services that react to bookings; each keeps its inbox in a schema of its own. */
export const CONSUMERS = {
  email: { groupId: "hotel-email", inboxSchema: "email_inbox" },
  inventory: { groupId: "hotel-inventory", inboxSchema: "inventory_inbox" },
  analytics: { groupId: "hotel-analytics", inboxSchema: "analytics_inbox" },
} as const;
export type ConsumerName = keyof typeof CONSUMERS;
export const CONSUMER_NAMES = Object.keys(CONSUMERS) as ConsumerName[];

export interface HotelConsumerOptions {
  /** Brokers and client (kafkajs by default, or @platformatic/kafka). */
  readonly kafka: ConsumerKafkaOptions;
  readonly db: Kysely<HotelDatabase>;
  readonly events: HotelEvents;
  /** Suffix for the consumer group, so a fresh demo run or test starts its own groups. */
  readonly groupSuffix?: string;
  /** @default 30000 */
  readonly sessionTimeoutMs?: number;
}

/**
 * What the three consumers share: clients, group, inbox schema, the event definitions. Each applies
 * what it has fetched of a partition in chunks of up to 500 events, one transaction per chunk.
 */
function common(o: HotelConsumerOptions, name: ConsumerName) {
  return {
    kafka: o.kafka,
    db: o.db,
    groupId: CONSUMERS[name].groupId + (o.groupSuffix ?? ""),
    schema: CONSUMERS[name].inboxSchema,
    events: o.events.events,
    sessionTimeoutMs: o.sessionTimeoutMs ?? 30_000,
  };
}

/** Email: records the confirmation (or cancellation) it would send. */
function email(o: HotelConsumerOptions) {
  return createConsumer({
    ...common(o, "email"),
    handlers: {
      booking_confirmed: async (event, { trx, eventId }) => {
        const { bookingId, hotelId, guestEmail, nights } = event.data;
        await trx
          .insertInto("email.sent_emails")
          .values({
            booking_id: bookingId,
            kind: "confirmation",
            to_address: guestEmail,
            subject: `Your stay at ${hotelId} is confirmed: ${nights} night(s), booking ${bookingId}`,
            event_id: eventId,
          })
          .execute();
      },
      booking_cancelled: async (event, { trx, eventId }) => {
        const { bookingId, hotelId } = event.data;
        const confirmation = await trx
          .selectFrom("email.sent_emails")
          .select("to_address")
          .where("booking_id", "=", bookingId)
          .where("kind", "=", "confirmation")
          .executeTakeFirst();
        await trx
          .insertInto("email.sent_emails")
          .values({
            booking_id: bookingId,
            kind: "cancellation",
            to_address: confirmation?.to_address ?? "unknown",
            subject: `Your booking ${bookingId} at ${hotelId} is cancelled`,
            event_id: eventId,
          })
          .execute();
      },
    },
  });
}

/** Inventory: decrements its own room count per hotel (a CHECK keeps it from going negative). */
function inventory(o: HotelConsumerOptions) {
  return createConsumer({
    ...common(o, "inventory"),
    handlers: {
      booking_confirmed: async (event, { trx }) => {
        await sql`UPDATE inventory.rooms SET rooms_left = rooms_left - 1 WHERE hotel_id = ${event.data.hotelId}`.execute(
          trx,
        );
      },
      booking_cancelled: async (event, { trx }) => {
        await sql`UPDATE inventory.rooms SET rooms_left = rooms_left + 1 WHERE hotel_id = ${event.data.hotelId}`.execute(
          trx,
        );
      },
    },
  });
}

/** Adds counts per hotel in one statement: `[bookings, nights, cancellations]` by hotel id. */
async function addCounts(trx: Transaction<HotelDatabase>, rows: Map<string, [number, number, number]>) {
  const hotels = [...rows.keys()];
  const col = (i: number) => hotels.map((h) => (rows.get(h) as [number, number, number])[i]);
  await sql`
    INSERT INTO analytics.hotel_bookings AS h (hotel_id, bookings, nights, cancellations)
    SELECT * FROM unnest(${hotels}::text[], ${col(0)}::int[], ${col(1)}::int[], ${col(2)}::int[])
    ON CONFLICT (hotel_id) DO UPDATE SET bookings = h.bookings + excluded.bookings, nights = h.nights + excluded.nights,
      cancellations = h.cancellations + excluded.cancellations`.execute(trx);
}

/**
 * Analytics: counts bookings, nights and cancellations per hotel. It takes a chunk's events at once
 * (`handleBatch`) and writes one upsert per chunk, however many bookings it holds.
 */
function analytics(o: HotelConsumerOptions) {
  return createConsumer({
    ...common(o, "analytics"),
    handleBatch: async (items, { trx }) => {
      const counts = new Map<string, [number, number, number]>();
      for (const { event } of items) {
        const c = counts.get(event.data.hotelId) ?? [0, 0, 0];
        if (event.type === "booking_confirmed") {
          c[0] += 1;
          c[1] += event.data.nights;
        } else {
          c[2] += 1;
        }
        counts.set(event.data.hotelId, c);
      }
      await addCounts(trx, counts);
    },
  });
}

// biome-ignore lint/suspicious/noExplicitAny: the three consumers differ only in their handlers
export type HotelConsumer = Consumer<HotelDatabase, any>;

/** Builds one of the three consumers (not started). */
export function createHotelConsumer(name: ConsumerName, options: HotelConsumerOptions): HotelConsumer {
  switch (name) {
    case "email":
      return email(options);
    case "inventory":
      return inventory(options);
    case "analytics":
      return analytics(options);
  }
}
