import { createRelay, type Relay } from "@eventlane/relay";
import {
  createTestDatabase,
  deleteTopics,
  type TestDatabase,
  kafkaBrokers,
  uniqueSuffix,
  uniqueTopic,
  waitFor,
} from "@eventlane/test-kit";
import type { FastifyInstance } from "fastify";
import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildHotelApi } from "../src/api/app.ts";
import { HOTELS } from "../src/config.ts";
import { CONSUMER_NAMES, createHotelConsumer, type HotelConsumer } from "../src/consumers/hotel-consumers.ts";
import { createDatabase, type HotelDatabase } from "../src/database.ts";
import { hotelEvents } from "../src/domain/hotel-events.ts";
import { ensureTopics, migrateHotel } from "../src/setup/setup.ts";

let database: TestDatabase;
let db: Kysely<HotelDatabase>;
let app: FastifyInstance;
let relay: Relay;
const consumers: HotelConsumer[] = [];
const topic = uniqueTopic("hotel.bookings");
const events = hotelEvents(topic);

beforeAll(async () => {
  database = await createTestDatabase("el_hotel");
  db = createDatabase(database.url, 20);
  await migrateHotel(db);
  await ensureTopics(["127.0.0.1:9092"], topic, 3);
  app = await buildHotelApi({ db, events });
  relay = createRelay({
    connectionString: database.url,
    kafka: { brokers: ["127.0.0.1:9092"] },
    topics: [topic],
    batchSize: 20,
  });
  await relay.start();
  const suffix = `-${uniqueSuffix()}`;
  for (const name of CONSUMER_NAMES) {
    const c = createHotelConsumer(name, {
      kafka: { brokers: kafkaBrokers },
      db,
      events,
      groupSuffix: suffix,
      sessionTimeoutMs: 10_000,
    });
    consumers.push(c);
  }
  await Promise.all(consumers.map((c) => c.start()));
});
afterAll(async () => {
  await Promise.all(consumers.map((c) => c.stop()));
  await relay?.stop();
  await app?.close();
  await db?.destroy();
  await deleteTopics([topic]);
  await database?.drop();
});

const book = (body: Record<string, unknown>) => app.inject({ method: "POST", url: "/bookings", payload: body });
const one = async <T>(q: Promise<{ rows: T[] }>) => (await q).rows[0] as T;

describe("hotel booking end to end", () => {
  it("every booking is applied exactly once by email, inventory and analytics; the last room is never oversold", async () => {
    const hotels = HOTELS.filter((h) => h.hotelId !== "last-room-inn");
    const confirmed: { bookingId: string; hotelId: string; nights: number }[] = [];
    // 24 bookings in both write styles, 6 at a time.
    for (let batch = 0; batch < 4; batch++) {
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) => {
          const n = batch * 6 + i;
          const hotel = hotels[n % hotels.length]!;
          const body = {
            bookingId: `b-${n}`,
            hotelId: hotel.hotelId,
            guestEmail: `guest${n}@example.com`,
            nights: 1 + (n % 4),
            style: n % 3 === 0 ? "table" : "event-sourced",
          };
          return book(body).then((r) => ({ r, body }));
        }),
      );
      for (const { r, body } of results) {
        expect(r.statusCode, r.body).toBe(201);
        confirmed.push({ bookingId: body.bookingId, hotelId: body.hotelId, nights: body.nights });
      }
    }
    // Cancel two: one of each style.
    for (const id of ["b-0", "b-1"]) {
      const r = await app.inject({
        method: "POST",
        url: `/bookings/${id}/cancel`,
        payload: { reason: "plans changed" },
      });
      expect(r.statusCode, r.body).toBe(200);
    }
    expect((await app.inject({ method: "POST", url: "/bookings/b-0/cancel", payload: {} })).statusCode).toBe(409);

    // Eight concurrent bookings of a hotel with two rooms: two win, six get a clear 409.
    const race = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        book({
          bookingId: `race-${i}`,
          hotelId: "last-room-inn",
          guestEmail: `r${i}@example.com`,
          nights: 1,
          style: i % 2 ? "table" : "event-sourced",
        }),
      ),
    );
    const won = race.filter((r) => r.statusCode === 201).map((r) => r.json<{ bookingId: string }>().bookingId);
    const lost = race.filter((r) => r.statusCode === 409);
    expect(won).toHaveLength(2);
    expect(lost).toHaveLength(6);
    for (const r of lost) expect(r.json()).toMatchObject({ error: "no_rooms_left" });
    for (const id of won) confirmed.push({ bookingId: id, hotelId: "last-room-inn", nights: 1 });
    // Nothing of the refused bookings was written: no stream, event, outbox row or table row.
    const refused = Array.from({ length: 8 }, (_, i) => `race-${i}`).filter((id) => !won.includes(id));
    const leftovers = await one(
      sql<{ n: string }>`SELECT (SELECT count(*) FROM eventlane.streams WHERE stream_id = ANY(${refused}))
                              + (SELECT count(*) FROM eventlane.events WHERE stream_id = ANY(${refused}))
                              + (SELECT count(*) FROM eventlane.outbox WHERE key = ANY(${refused}))
                              + (SELECT count(*) FROM hotel.bookings WHERE booking_id = ANY(${refused})) AS n`.execute(
        db,
      ),
    );
    expect(Number(leftovers.n)).toBe(0);
    expect((await app.inject({ method: "GET", url: "/hotels/last-room-inn" })).json()).toMatchObject({
      roomsAvailable: 0,
    });
    expect((await app.inject({ method: "GET", url: `/bookings/${won[0]}` })).json()).toMatchObject({
      status: "confirmed",
    });
    expect((await app.inject({ method: "GET", url: "/bookings/b-1" })).json()).toMatchObject({
      status: "cancelled",
      style: "event-sourced",
    });

    // Wait for every consumer to catch up: 26 confirmations + 2 cancellations.
    const total = confirmed.length + 2;
    await waitFor(
      "all three consumers caught up",
      async () => {
        const e = await one(sql<{ n: string }>`SELECT count(*) AS n FROM email.sent_emails`.execute(db));
        const a = await one(
          sql<{
            n: string;
          }>`SELECT coalesce(sum(bookings + cancellations), 0) AS n FROM analytics.hotel_bookings`.execute(db),
        );
        const i = await one(
          sql<{ n: string }>`SELECT sum(rooms_total - rooms_left) AS n FROM inventory.rooms`.execute(db),
        );
        return Number(e.n) === total && Number(a.n) === total && Number(i.n) === confirmed.length - 2;
      },
      60_000,
    );
    await new Promise((r) => setTimeout(r, 500));

    // Email: one confirmation per booking, one cancellation per cancelled booking, nothing else.
    const mails = await db.selectFrom("email.sent_emails").select(["booking_id", "kind"]).execute();
    expect(
      mails
        .filter((m) => m.kind === "confirmation")
        .map((m) => m.booking_id)
        .sort(),
    ).toEqual(confirmed.map((c) => c.bookingId).sort());
    expect(
      mails
        .filter((m) => m.kind === "cancellation")
        .map((m) => m.booking_id)
        .sort(),
    ).toEqual(["b-0", "b-1"]);
    // Inventory agrees with the API's allocation and never went negative (its CHECK would have failed the handler).
    const inventory = await db.selectFrom("inventory.rooms").selectAll().execute();
    const api = await db.selectFrom("hotel.hotels").selectAll().execute();
    for (const h of api) expect(inventory.find((i) => i.hotel_id === h.hotel_id)?.rooms_left).toBe(h.rooms_available);
    expect(inventory.find((i) => i.hotel_id === "last-room-inn")?.rooms_left).toBe(0);
    // Analytics: bookings per hotel.
    const analytics = await db.selectFrom("analytics.hotel_bookings").selectAll().execute();
    for (const h of HOTELS) {
      const mine = confirmed.filter((c) => c.hotelId === h.hotelId);
      expect(analytics.find((a) => a.hotel_id === h.hotelId)).toMatchObject({
        bookings: mine.length,
        nights: mine.reduce((s, c) => s + c.nights, 0),
      });
    }
    for (const c of consumers) {
      expect(c.stats()).toMatchObject({ deadLettered: 0, gaps: 0 });
      expect(c.stats().applied).toBe(total);
    }
    // /metrics shows the outbox drained.
    const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toMatch(/eventlane_outbox_pending_rows/);
  });
});
