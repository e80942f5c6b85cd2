import { Schema } from "effect";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConcurrencyError,
  createEventStore,
  defineAggregate,
  defineEvent,
  Headers,
  InvalidPayloadError,
  PayloadTooLargeError,
  SerializationError,
  UnknownEventTypeError,
  type AggregateEvent,
} from "../src/index.ts";
import { murmur2 } from "../src/internal/index.ts";
import { Booking, BOOKINGS_TOPIC, BookingCancelled, BookingConfirmed, RoomCleaned } from "./fixtures/booking.ts";
import { type CoreTestDb, setupCoreDb } from "./fixtures/db.ts";

let t: CoreTestDb;
const store = createEventStore();

beforeAll(async () => {
  t = await setupCoreDb();
});
afterAll(async () => {
  await t.close();
});

const count = async (table: string, where = "true") =>
  Number(
    (await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.raw(table)} WHERE ${sql.raw(where)}`.execute(t.db))
      .rows[0]?.n,
  );

const confirm = (bookingId: string, nights = 2) =>
  BookingConfirmed.make({ bookingId, hotelId: "h1", guestEmail: `${bookingId}@example.com`, nights });

describe("atomicity", () => {
  it("a throw inside the transaction leaves no business row, no event and no outbox row", async () => {
    await expect(
      t.db.transaction().execute(async (trx) => {
        await trx
          .insertInto("bookings")
          .values({ id: "atom-1", hotel_id: "h1", guest_email: "x@example.com", nights: 1 })
          .execute();
        await store.enqueue(trx, BookingConfirmed, {
          bookingId: "atom-1",
          hotelId: "h1",
          guestEmail: "x@example.com",
          nights: 1,
        });
        await store.appendToStream(trx, Booking, "booking-atom-1", [confirm("atom-1")], {
          expectedVersion: "no_stream",
        });
        throw new Error("payment failed");
      }),
    ).rejects.toThrow("payment failed");
    expect(await count("bookings", "id = 'atom-1'")).toBe(0);
    expect(await count("eventlane.events", "stream_id = 'booking-atom-1'")).toBe(0);
    expect(await count("eventlane.streams", "stream_id = 'booking-atom-1'")).toBe(0);
    expect(await count("eventlane.outbox", "key in ('atom-1', 'booking-atom-1')")).toBe(0);
    expect(await count("eventlane.key_sequences", "key = 'atom-1'")).toBe(0);
  });

  it("a failed validation inside the transaction rolls everything back", async () => {
    const error = await t.db
      .transaction()
      .execute(async (trx) => {
        await trx
          .insertInto("bookings")
          .values({ id: "atom-2", hotel_id: "h1", guest_email: "x@example.com", nights: 1 })
          .execute();
        await store.enqueue(trx, BookingConfirmed, {
          bookingId: "atom-2",
          hotelId: "h1",
          guestEmail: "x@example.com",
          nights: 1,
        });
        // nights must be an integer
        await store.enqueue(trx, BookingConfirmed, {
          bookingId: "atom-2",
          hotelId: "h1",
          guestEmail: "x@example.com",
          nights: 1.5,
        });
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidPayloadError);
    expect((error as InvalidPayloadError).code).toBe("EVENTLANE_INVALID_PAYLOAD");
    expect(await count("bookings", "id = 'atom-2'")).toBe(0);
    expect(await count("eventlane.outbox", "key = 'atom-2'")).toBe(0);
  });

  it("a version conflict inside the transaction rolls back the business write", async () => {
    await store.appendToStream(t.db, Booking, "booking-atom-3", [confirm("atom-3")], { expectedVersion: "no_stream" });
    const error = await t.db
      .transaction()
      .execute(async (trx) => {
        await trx
          .insertInto("bookings")
          .values({ id: "atom-3", hotel_id: "h1", guest_email: "x@example.com", nights: 1 })
          .execute();
        await store.appendToStream(trx, Booking, "booking-atom-3", [confirm("atom-3")], {
          expectedVersion: "no_stream",
        });
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConcurrencyError);
    expect(error).toMatchObject({ code: "EVENTLANE_CONCURRENCY", expected: "no_stream", actual: 1 });
    expect(await count("bookings", "id = 'atom-3'")).toBe(0);
    expect(await count("eventlane.events", "stream_id = 'booking-atom-3'")).toBe(1);
  });
});

describe("appendToStream", () => {
  it("writes event rows and outbox rows that carry what the relay needs (payload referenced, not copied)", async () => {
    const res = await store.appendToStream(t.db, Booking, "booking-row-1", [confirm("row-1", 3)], {
      expectedVersion: "no_stream",
      metadata: {
        correlationId: "corr-1",
        causationId: "cause-1",
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      },
    });
    expect(res.nextVersion).toBe(1);
    const row = (
      await sql<Record<string, unknown>>`SELECT * FROM eventlane.outbox WHERE id = ${res.outboxIds[0]}`.execute(t.db)
    ).rows[0]!;
    expect(row).toMatchObject({
      event_id: res.eventIds[0],
      topic: BOOKINGS_TOPIC,
      key: "booking-row-1",
      key_hash: murmur2("booking-row-1"),
      event_type: "booking_confirmed",
      schema_version: 2,
      aggregate_type: "booking",
      aggregate_id: "booking-row-1",
      aggregate_version: 1,
      key_sequence: null,
      payload: null,
      status: "pending",
      attempts: 0,
    });
    expect(row.headers).toEqual({
      [Headers.correlationId]: "corr-1",
      [Headers.causationId]: "cause-1",
      [Headers.traceparent]: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });
    expect(row.created_at).toBeInstanceOf(Date);
    // UUID version 7
    expect(String(row.event_id)[14]).toBe("7");
    const ev = (
      await sql<{ payload: unknown }>`SELECT payload FROM eventlane.events WHERE event_id = ${res.eventIds[0]}`.execute(
        t.db,
      )
    ).rows[0]!;
    expect(ev.payload).toEqual({ bookingId: "row-1", hotelId: "h1", guestEmail: "row-1@example.com", nights: 3 });
  });

  it("appends several events with consecutive versions and outbox ids in order", async () => {
    await store.appendToStream(t.db, Booking, "booking-multi", [confirm("multi")], { expectedVersion: "no_stream" });
    const res = await store.appendToStream(
      t.db,
      Booking,
      "booking-multi",
      [
        BookingCancelled.make({ bookingId: "multi", reason: "a" }),
        BookingCancelled.make({ bookingId: "multi", reason: "b" }),
      ],
      { expectedVersion: 1 },
    );
    expect(res.nextVersion).toBe(3);
    const rows = (
      await sql<{ id: string; aggregate_version: number }>`
      SELECT id, aggregate_version FROM eventlane.outbox WHERE key = 'booking-multi' ORDER BY id`.execute(t.db)
    ).rows;
    expect(rows.map((r) => r.aggregate_version)).toEqual([1, 2, 3]);
    const read = await store.readStream(t.db, Booking, "booking-multi");
    expect(read.version).toBe(3);
    expect(read.events.map((e) => (e.event.type === "booking_cancelled" ? e.event.data.reason : "confirmed"))).toEqual([
      "confirmed",
      "a",
      "b",
    ]);
  });

  it("lets exactly one of many concurrent appends win each version", async () => {
    const streamId = "booking-race";
    const writers = 12;
    const rounds = 3;
    let expected: number | "no_stream" = "no_stream";
    for (let round = 0; round < rounds; round++) {
      const exp = expected;
      const results = await Promise.allSettled(
        Array.from({ length: writers }, (_, i) =>
          store.appendToStream(
            t.db,
            Booking,
            streamId,
            [BookingCancelled.make({ bookingId: "race", reason: `r${round}-w${i}` })],
            {
              expectedVersion: exp,
            },
          ),
        ),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(writers - 1);
      for (const l of lost) {
        expect(l.reason).toBeInstanceOf(ConcurrencyError);
        expect((l.reason as ConcurrencyError).actual).toBe(round + 1);
      }
      expected = round + 1;
    }
    expect(await count("eventlane.events", `stream_id = '${streamId}'`)).toBe(rounds);
    expect(await count("eventlane.outbox", `key = '${streamId}'`)).toBe(rounds);
  });

  it("handle() retries a conflict when asked and every command lands once", async () => {
    const streamId = "booking-handle-race";
    await store.handle(t.db, Booking, streamId, {
      kind: "confirm",
      bookingId: "hr",
      hotelId: "h1",
      guestEmail: "a@example.com",
      nights: 1,
    });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        store.handle(t.db, Booking, streamId, { kind: "touch", bookingId: "hr" }, { retries: 20 }),
      ),
    );
    expect(results.every((r) => r.status === "fulfilled")).toBe(true);
    const final = await store.aggregateStream(t.db, Booking, streamId);
    expect(final.version).toBe(9);
    // without retries, the same race produces ConcurrencyErrors
    const noRetry = await Promise.allSettled(
      Array.from({ length: 8 }, () => store.handle(t.db, Booking, streamId, { kind: "touch", bookingId: "hr" })),
    );
    expect(noRetry.some((r) => r.status === "rejected" && r.reason instanceof ConcurrencyError)).toBe(true);
  });

  it("rejects an event the aggregate does not define, before writing anything", async () => {
    const foreign = RoomCleaned.make({ roomId: "r1" }) as unknown as AggregateEvent<typeof Booking>;
    const error = await store.appendToStream(t.db, Booking, "booking-foreign", [foreign]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnknownEventTypeError);
    expect(error).toMatchObject({ code: "EVENTLANE_UNKNOWN_EVENT_TYPE", eventType: "room_cleaned" });
    expect(await count("eventlane.streams", "stream_id = 'booking-foreign'")).toBe(0);
  });
});

describe("loading", () => {
  it("upcasts stored v1 payloads to the current type", async () => {
    await sql`INSERT INTO eventlane.streams (stream_id, stream_type, version) VALUES ('booking-old', 'booking', 1)`.execute(
      t.db,
    );
    await sql`INSERT INTO eventlane.events (stream_id, version, event_id, event_type, schema_version, payload)
      VALUES ('booking-old', 1, gen_random_uuid(), 'booking_confirmed', 1, '{"bookingId":"old","hotelId":"h9","guest":"old@example.com"}')`.execute(
      t.db,
    );
    const read = await store.readStream(t.db, Booking, "booking-old");
    expect(read.events[0]?.storedSchemaVersion).toBe(1);
    expect(read.events[0]?.event).toMatchObject({
      type: "booking_confirmed",
      data: { bookingId: "old", hotelId: "h9", guestEmail: "old@example.com", nights: 1 },
    });
    const agg = await store.aggregateStream(t.db, Booking, "booking-old");
    expect(agg.state).toEqual({ status: "confirmed", nights: 1, changes: 1 });
  });

  it("refuses a stored payload that does not match its schema with a typed error", async () => {
    await sql`INSERT INTO eventlane.streams (stream_id, stream_type, version) VALUES ('booking-bad', 'booking', 1)`.execute(
      t.db,
    );
    await sql`INSERT INTO eventlane.events (stream_id, version, event_id, event_type, schema_version, payload)
      VALUES ('booking-bad', 1, gen_random_uuid(), 'booking_confirmed', 2, '{"bookingId":"bad"}')`.execute(t.db);
    await expect(store.readStream(t.db, Booking, "booking-bad")).rejects.toMatchObject({
      code: "EVENTLANE_INVALID_PAYLOAD",
    });
  });

  it("writes snapshots as the stream grows and loads from the latest one", async () => {
    const streamId = "booking-snap";
    await store.handle(t.db, Booking, streamId, {
      kind: "confirm",
      bookingId: "s",
      hotelId: "h1",
      guestEmail: "s@example.com",
      nights: 4,
    });
    for (let i = 0; i < 11; i++) await store.handle(t.db, Booking, streamId, { kind: "touch", bookingId: "s" });
    const snap = (
      await sql<{
        version: number;
        state: unknown;
      }>`SELECT version, state FROM eventlane.snapshots WHERE stream_id = ${streamId}`.execute(t.db)
    ).rows[0];
    expect(snap?.version).toBe(10);
    expect(snap?.state).toEqual({ status: "cancelled", nights: 4, changes: 10 });
    const loaded = await store.aggregateStream(t.db, Booking, streamId);
    expect(loaded).toEqual({
      state: { status: "cancelled", nights: 4, changes: 12 },
      version: 12,
      snapshotVersion: 10,
    });
    // The snapshot really is the starting point: alter it and the loaded state follows.
    await sql`UPDATE eventlane.snapshots SET state = jsonb_set(state, '{changes}', '100') WHERE stream_id = ${streamId}`.execute(
      t.db,
    );
    expect((await store.aggregateStream(t.db, Booking, streamId)).state.changes).toBe(102);
  });
});

describe("enqueue (non-event-sourced tables)", () => {
  it("inserts the business row and the outbox row with a per-key sequence", async () => {
    const r = await t.db.transaction().execute(async (trx) => {
      await trx
        .insertInto("bookings")
        .values({ id: "enq-1", hotel_id: "h1", guest_email: "e@example.com", nights: 2 })
        .execute();
      const a = await store.enqueue(trx, BookingConfirmed, {
        bookingId: "enq-1",
        hotelId: "h1",
        guestEmail: "e@example.com",
        nights: 2,
      });
      const b = await store.enqueue(
        trx,
        BookingCancelled,
        { bookingId: "enq-1", reason: "changed mind" },
        { metadata: { correlationId: "c-9" } },
      );
      return [a, b];
    });
    expect(r.map((x) => x.sequence)).toEqual([1, 2]);
    const rows = (
      await sql<Record<string, unknown>>`SELECT * FROM eventlane.outbox WHERE key = 'enq-1' ORDER BY id`.execute(t.db)
    ).rows;
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({
      topic: BOOKINGS_TOPIC,
      event_type: "booking_confirmed",
      schema_version: 2,
      key_sequence: "1",
      aggregate_type: null,
    });
    expect(rows[0]?.payload).toEqual({ bookingId: "enq-1", hotelId: "h1", guestEmail: "e@example.com", nights: 2 });
    expect(rows[1]).toMatchObject({ key_sequence: "2", headers: { [Headers.correlationId]: "c-9" } });
  });

  it("gives concurrent same-key transactions ids and sequences in commit order", async () => {
    const key = "enq-race";
    const writers = 16;
    const commitOrder: number[] = [];
    await Promise.all(
      Array.from({ length: writers }, (_, i) =>
        t.db
          .transaction()
          .execute(async (trx) => {
            const r = await store.enqueue(trx, BookingCancelled, { bookingId: key, reason: `w${i}` });
            // Hold the transaction open a random while after the enqueue, so commits interleave.
            await sql`SELECT pg_sleep(${Math.random() * 0.03})`.execute(trx);
            return r;
          })
          .then((r) => commitOrder.push(r.sequence)),
      ),
    );
    // Each commit returned after the previous sequence's commit: sequences in commit order, no gaps.
    expect(commitOrder).toEqual(Array.from({ length: writers }, (_, i) => i + 1));
    const rows = (
      await sql<{ id: string; key_sequence: string }>`
      SELECT id, key_sequence FROM eventlane.outbox WHERE key = ${key} ORDER BY id`.execute(t.db)
    ).rows;
    expect(rows.map((r) => Number(r.key_sequence))).toEqual(Array.from({ length: writers }, (_, i) => i + 1));
  });

  it("sends one NOTIFY per transaction however many events it writes", async () => {
    const listener = new pg.Client({ connectionString: t.database.url });
    await listener.connect();
    const received: string[] = [];
    listener.on("notification", (m) => received.push(m.channel));
    await listener.query(`LISTEN ${store.options.names.notifyChannel}`);
    await t.db.transaction().execute(async (trx) => {
      for (let i = 0; i < 5; i++)
        await store.enqueue(trx, BookingCancelled, { bookingId: "notify-1", reason: `n${i}` });
      await store.appendToStream(trx, Booking, "booking-notify", [confirm("notify")]);
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(received).toEqual(["eventlane_outbox"]);
    const quiet = createEventStore({ notify: false });
    await quiet.enqueue(t.db, BookingCancelled, { bookingId: "notify-2", reason: "quiet" });
    await new Promise((r) => setTimeout(r, 300));
    expect(received).toHaveLength(1);
    await listener.end();
  });
});

describe("bad input", () => {
  const Loose = defineEvent({
    type: "loose",
    schema: Schema.Struct({ id: Schema.String, extra: Schema.Unknown }),
    route: { topic: "loose", key: (e) => e.id },
  });

  it("an unserialisable payload raises SerializationError and writes nothing", async () => {
    const error = await store.enqueue(t.db, Loose, { id: "ser-1", extra: { n: 10n } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SerializationError);
    expect((error as SerializationError).code).toBe("EVENTLANE_SERIALIZATION");
    expect(await count("eventlane.outbox", "key = 'ser-1'")).toBe(0);
  });

  it("an oversize payload raises PayloadTooLargeError with the size and the limit", async () => {
    const small = createEventStore({ maxPayloadBytes: 100 });
    const error = await small.enqueue(t.db, Loose, { id: "big-1", extra: "x".repeat(200) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(error).toMatchObject({ code: "EVENTLANE_PAYLOAD_TOO_LARGE", limit: 100 });
    expect((error as PayloadTooLargeError).bytes).toBeGreaterThan(200);
    expect(await count("eventlane.outbox", "key = 'big-1'")).toBe(0);
  });

  it("an event with no key for enqueue raises an option error", async () => {
    const NoKey = defineEvent({ type: "no_key", schema: Schema.Struct({ a: Schema.String }), route: { topic: "t" } });
    await expect(store.enqueue(t.db, NoKey, { a: "x" })).rejects.toMatchObject({
      code: "EVENTLANE_INVALID_OPTION",
      option: "key",
    });
    const ok = await store.enqueue(t.db, NoKey, { a: "x" }, { key: "explicit" });
    expect(ok.sequence).toBe(1);
  });

  it("a bad expectedVersion raises an option error", async () => {
    await expect(
      store.appendToStream(t.db, Booking, "booking-x", [confirm("x")], { expectedVersion: -1 }),
    ).rejects.toMatchObject({
      code: "EVENTLANE_INVALID_OPTION",
      option: "expectedVersion",
    });
  });
});

describe("payload bytes", () => {
  // Keys in an order jsonb would not keep (it sorts them by length, then bytewise) and text it
  // would re-render (it puts a space after every ":" and ","; it keeps escapes and non-ASCII).
  const Quoted = defineEvent({
    type: "quote_made",
    schema: Schema.Struct({
      quoteId: Schema.String,
      zone: Schema.String,
      a: Schema.Struct({ y: Schema.Number, x: Schema.Array(Schema.Number) }),
      note: Schema.String,
    }),
    route: { topic: "quotes", key: (e) => e.quoteId },
  });
  const Quote = defineAggregate({
    type: "quote",
    events: [Quoted],
    initialState: () => null,
    evolve: (s) => s,
    decide: () => [],
  });

  it("gives an event-sourced event and an enqueued one with the same payload the same bytes, the writer's JSON", async () => {
    const data = { quoteId: "bytes-1", zone: "eu", a: { y: 2.5, x: [1, 20, 300] }, note: 'naïve ☃ "q" \\ \u0001' };
    const written = JSON.stringify(Quoted.encode(data));
    const appended = await store.appendToStream(t.db, Quote, "quote-bytes-1", [Quoted.make(data)]);
    const enqueued = await store.enqueue(t.db, Quoted, data);
    // The relay's read (packages/relay/src/outbox-reader/statements.ts) takes the outbox row's payload,
    // or for an event-sourced row (payload NULL) the events row's, as text: this is what Kafka gets.
    const rows = (
      await sql<{ id: string; payload: string }>`
        SELECT o.id::text AS id, COALESCE(o.payload::text, e.payload::text) AS payload
          FROM eventlane.outbox o
          LEFT JOIN eventlane.events e ON o.payload IS NULL AND e.event_id = o.event_id
         WHERE o.id = ANY(${[appended.outboxIds[0], enqueued.outboxId]}::bigint[])
         ORDER BY o.id`.execute(t.db)
    ).rows;
    expect(rows.map((r) => r.id)).toEqual([appended.outboxIds[0], enqueued.outboxId]);
    // Equal strings are equal UTF-8 bytes; compared as text for a readable diff.
    expect(rows.map((r) => r.payload)).toEqual([written, written]);
    // Reading the stream back still decodes the payload.
    const read = await store.readStream(t.db, Quote, "quote-bytes-1");
    expect(read.events[0]?.event.data).toEqual(data);
  });
});
